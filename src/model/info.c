/* info.c - what this build of the library is and what it will run on this machine: shown by
 * `tkr-embed --version`, logged by the server, and printed beside every benchmark figure, so a
 * number always comes with the kernels and options that produced it. */
#include "kernels/kernels.h"
#include "tkr_embed.h"

#include <stdio.h>

/* Build options are compile-time facts: each optional part defines its TKR_WITH_* macro in the
 * Makefile when it is compiled in. */
const char *tkr_build_options(void) {
    return "cuda="
#if defined(TKR_WITH_CUDA) || defined(TKR_HAVE_CUDA)
           "yes"
#else
           "no"
#endif
           " pdf="
#if defined(TKR_WITH_PDF) || defined(TKR_HAVE_PDF)
           "yes"
#else
           "no"
#endif
           " video=yes" /* FFmpeg is a required dependency */
        ;
}

/* The CPU kernels a model loaded with default params would use here, and the CPU's name. */
void tkr_describe_cpu(char *buf, size_t cap) {
    tkr_kctx ctx;
    tkr_kctx_init(&ctx, NULL, NULL);
    tkr_kctx_describe(&ctx, buf, cap);
}
