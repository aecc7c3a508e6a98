/* fuzz_tokenizer_json.c - tokenizer.json loading (model.vocab, model.merges in both forms,
 * added_tokens, normalizer, pre_tokenizer); an input split by a "--8<--" line gives a
 * tokenizer_config.json as well. Loaded from memory (tkr_tokenizer_load_memory, the parser the
 * directory loader runs). A tokenizer that loads must tokenize a fixed text. */
#include "fuzz_util.h"
#include "tokenizer/tokenizer.h"

#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    size_t n1, n2;
    const uint8_t *p2;
    fz_split(data, size, &n1, &p2, &n2);
    tkr_tokenizer_files files = {0};
    files.tokenizer_json = (const char *)data;
    files.tokenizer_json_len = n1;
    if (n2) {
        files.config_json = (const char *)p2;
        files.config_json_len = n2;
    }
    tkr_tokenizer_limits lim = tkr_tokenizer_default_limits();
    lim.max_ids = 1 << 16;
    lim.max_added = 256;
    tkr_tokenizer *tok = NULL;
    tkr_error err;
    if (tkr_tokenizer_load_memory(&files, "fuzz", &lim, &tok, &err) == TKR_OK) {
        static const char text[] = "Hello world <|im_start|> caf\xc3\xa9 123 \xf0\x9f\x98\x80!";
        int32_t *ids = NULL;
        size_t n = 0;
        if (tkr_tokenize(tok, text, sizeof text - 1, &ids, &n, &err) == TKR_OK) free(ids);
        tkr_tokenizer_free(tok);
    }
    return 0;
}
