/* cmd_pull.c - `tkr-embed pull org/name[@rev][:QUANT]`: downloads a model into the shared
 * Hugging Face cache (see src/hub/hub.h) and prints the local path. */
#include "cli/cli.h"
#include "hub/hub.h"

#include <stdio.h>
#include <string.h>

static void usage(FILE *f) {
    fprintf(f,
            "usage: tkr-embed pull org/name[@revision][:QUANT]\n"
            "\n"
            "Downloads the files the model needs into the Hugging Face cache (shared with\n"
            "huggingface_hub and other tools): config, tokenizer and safetensors shards, or with\n"
            ":QUANT the GGUF whose name holds QUANT (e.g. :Q4_K_M) and its mmproj. Partial files\n"
            "resume; LFS files are checked against their sha256. Prints the local path.\n"
            "Then: tkr-embed embed -m org/name ..., tkr-embed serve -m org/name ...\n"
            "\n"
            "Environment: HF_HOME, HF_HUB_CACHE, HF_ENDPOINT, HF_TOKEN (or the token file),\n"
            "HF_HUB_OFFLINE=1 (use the cache only).\n");
}

int tkr_cmd_pull(int argc, char **argv) {
    if (argc != 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
        usage(argc == 2 ? stdout : stderr);
        return argc == 2 ? 0 : 2;
    }
    tkr_hub_params p;
    tkr_hub_params_init(&p);
    tkr_hub_result r;
    tkr_error err;
    if (tkr_hub_fetch(&p, argv[1], &r, &err) != TKR_OK) {
        fprintf(stderr, "tkr-embed pull: %s\n", err.message);
        return 1;
    }
    fprintf(stderr, "tkr-embed pull: %s at commit %s: %d file(s) downloaded\n", argv[1], r.commit,
            r.files_downloaded);
    printf("%s\n", r.path);
    if (r.mmproj[0]) printf("%s\n", r.mmproj);
    return 0;
}
