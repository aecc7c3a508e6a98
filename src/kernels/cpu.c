/* cpu.c - run-time CPU feature detection and the kernel-selection cap (see tkr_kctx).
 *
 * Detection is done per call (no global state): __builtin_cpu_supports on x86 with GCC/clang,
 * getauxval(AT_HWCAP) on Linux arm64, sysctl on macOS arm64. */
#include "kernels/kernels_impl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__aarch64__) && defined(__linux__)
#include <sys/auxv.h>
#ifndef HWCAP_ASIMDDP
#define HWCAP_ASIMDDP (1 << 20)
#endif
#endif
#if defined(__aarch64__) && defined(__APPLE__)
#include <sys/sysctl.h>
#endif

/* Everything the CPU offers, before any cap. */
static void detect(tkr_kctx *c) {
#if defined(TKR_HAVE_X86) && defined(__GNUC__)
    __builtin_cpu_init();
    c->avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
              __builtin_cpu_supports("f16c");
    c->avx512 = c->avx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
    c->avx512_vnni = c->avx512 && __builtin_cpu_supports("avx512vnni");
#if defined(__clang__) || (defined(__GNUC__) && __GNUC__ >= 12)
    c->avx_vnni = c->avx2 && __builtin_cpu_supports("avxvnni");
    c->avx512_bf16 = c->avx512 && __builtin_cpu_supports("avx512bf16");
#endif
#elif defined(__aarch64__)
    c->neon = true;
#if defined(__linux__)
    c->neon_dot = (getauxval(AT_HWCAP) & HWCAP_ASIMDDP) != 0;
#elif defined(__APPLE__)
    int v = 0;
    size_t len = sizeof v;
    if (sysctlbyname("hw.optional.arm.FEAT_DotProd", &v, &len, NULL, 0) == 0) c->neon_dot = v != 0;
    else c->neon_dot = true; /* macOS before 12 lacks the name; every Apple arm64 CPU has it */
#endif
#endif
}

bool tkr_kctx_init(tkr_kctx *ctx, tkr_pool *pool, const char *cap) {
    memset(ctx, 0, sizeof *ctx);
    ctx->pool = pool;
    detect(ctx);
    if (!cap || !*cap || !strcmp(cap, "auto") || !strcmp(cap, "avx512") || !strcmp(cap, "neon-dot"))
        return true;
    if (!strcmp(cap, "generic")) {
        tkr_pool *p = ctx->pool;
        memset(ctx, 0, sizeof *ctx);
        ctx->pool = p;
        return true;
    }
    if (!strcmp(cap, "avx2") || !strcmp(cap, "avx2-vnni")) {
        ctx->avx512 = ctx->avx512_vnni = ctx->avx512_bf16 = false;
        if (!strcmp(cap, "avx2")) ctx->avx_vnni = false;
        return true;
    }
    if (!strcmp(cap, "neon")) {
        ctx->neon_dot = false;
        return true;
    }
    return false;
}

void tkr_cpu_model_name(char *buf, size_t cap) {
    if (cap == 0) return;
    snprintf(buf, cap, "unknown cpu");
#if defined(__linux__)
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f) return;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "model name", 10) && strncmp(line, "Model", 5) && strncmp(line, "CPU part", 8))
            continue;
        const char *v = strchr(line, ':');
        if (!v) continue;
        v++;
        while (*v == ' ' || *v == '\t') v++;
        size_t n = strcspn(v, "\n");
        if (n == 0) continue;
        snprintf(buf, cap, "%.*s", (int)n, v);
        if (!strncmp(line, "model name", 10) || !strncmp(line, "Model", 5)) break;
    }
    fclose(f);
#elif defined(__APPLE__)
    size_t len = cap;
    if (sysctlbyname("machdep.cpu.brand_string", buf, &len, NULL, 0) != 0) snprintf(buf, cap, "unknown cpu");
#endif
}

void tkr_kctx_describe(const tkr_kctx *ctx, char *buf, size_t cap) {
    if (cap == 0) return;
    char isa[128] = "";
    if (ctx->avx512) {
        snprintf(isa, sizeof isa, "avx512%s%s", ctx->avx512_vnni ? " vnni" : "",
                 ctx->avx512_bf16 ? " bf16" : "");
    } else if (ctx->avx2) {
        snprintf(isa, sizeof isa, "avx2%s", ctx->avx_vnni ? " avx-vnni" : "");
    } else if (ctx->neon) {
        snprintf(isa, sizeof isa, "neon%s", ctx->neon_dot ? " dotprod" : "");
    } else {
        snprintf(isa, sizeof isa, "generic");
    }
    char model[160];
    tkr_cpu_model_name(model, sizeof model);
    snprintf(buf, cap, "%s%s (%s)", isa, ctx->fast_bf16 ? " fast-bf16" : "", model);
}
