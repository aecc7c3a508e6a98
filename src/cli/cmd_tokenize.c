/* cmd_tokenize.c - `tkr-embed tokenize -m DIR --text "..."`: the raw token ids of a text (no
 * template), loading only the tokenizer. */
#include "cli/cli.h"
#include "hub/hub.h"
#include "tkr_embed.h"

#include <stdio.h>
#include <string.h>

static void usage(FILE *f) {
    fprintf(f,
            "usage: tkr-embed tokenize -m DIR --text TEXT\n"
            "\n"
            "Prints the JSON array of token ids of TEXT as the model's tokenizer produces them\n"
            "(no prompt template; special-token strings such as <|im_end|> are recognised).\n"
            "\n"
            "  -m, --model DIR   model directory (tokenizer.json, or vocab.json + merges.txt)\n"
            "  --text TEXT       the text\n"
            "  -h, --help        this help\n");
}

int tkr_cmd_tokenize(int argc, char **argv) {
    const char *dir = NULL, *text = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if ((!strcmp(a, "-m") || !strcmp(a, "--model")) && i + 1 < argc) {
            dir = argv[++i];
        } else if (!strcmp(a, "--text") && i + 1 < argc) {
            text = argv[++i];
        } else {
            fprintf(stderr, "tkr-embed tokenize: unknown or incomplete option '%s'\n", a);
            usage(stderr);
            return 2;
        }
    }
    if (!dir || !text) {
        fprintf(stderr, "tkr-embed tokenize: -m DIR and --text TEXT are required\n");
        usage(stderr);
        return 2;
    }
    tkr_error err;
    tkr_tokenizer *tok = NULL;
    static tkr_hub_result hub; /* -m org/name: the cached files */
    if (tkr_hub_resolve_model(dir, &hub, &err) != TKR_OK) {
        fprintf(stderr, "tkr-embed: %s\n", err.message);
        return 1;
    }
    dir = hub.path;
    if (tkr_tokenizer_load(dir, &tok, &err) != TKR_OK) {
        fprintf(stderr, "tkr-embed: %s\n", err.message);
        return 1;
    }
    int32_t *ids = NULL;
    size_t n = 0;
    if (tkr_tokenize(tok, text, strlen(text), &ids, &n, &err) != TKR_OK) {
        fprintf(stderr, "tkr-embed: %s\n", err.message);
        tkr_tokenizer_free(tok);
        return 1;
    }
    putchar('[');
    for (size_t i = 0; i < n; i++) printf(i ? ", %d" : "%d", ids[i]);
    printf("]\n");
    tkr_free(ids);
    tkr_tokenizer_free(tok);
    return 0;
}
