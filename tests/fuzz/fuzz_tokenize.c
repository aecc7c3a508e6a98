/* fuzz_tokenize.c - tkr_tokenize on arbitrary bytes with the real Qwen2 tokenizer (invalid UTF-8
 * replacement, NFC, the pre-tokenizer regex, added tokens, byte-level BPE). The tokenizer
 * directory comes from $TKR_FUZZ_TOKENIZER_DIR (tests/fuzz/run.sh assembles it from the shared
 * data). Every id must be a vocabulary id. */
#include "tokenizer/tokenizer.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

static tkr_tokenizer *tok;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc; (void)argv;
    const char *dir = getenv("TKR_FUZZ_TOKENIZER_DIR");
    tkr_error err;
    if (!dir || tkr_tokenizer_load(dir, &tok, &err) != TKR_OK) {
        fprintf(stderr, "fuzz_tokenize: set TKR_FUZZ_TOKENIZER_DIR to a Qwen2 tokenizer directory\n");
        exit(1);
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    int32_t *ids = NULL;
    size_t n = 0;
    tkr_error err;
    if (tkr_tokenize(tok, (const char *)data, size, &ids, &n, &err) == TKR_OK) {
        int32_t vocab = tkr_tokenizer_vocab_size(tok);
        for (size_t i = 0; i < n; i++)
            if (ids[i] < 0 || ids[i] >= vocab) abort();
        free(ids);
    }
    return 0;
}
