/* bench_tokenizer.c - single-thread tokenizer throughput.
 *
 *   build/bench/bench_tokenizer [TOKENIZER_DIR [TEXT_FILE [MIN_MB]]]
 *
 * TOKENIZER_DIR defaults to $TKR_TEST_DATA/tokenizers/qwen2 (else ../shared/data/...). The
 * text defaults to llama.cpp's Qwen2 vocab test strings (mixed scripts, emoji, whitespace
 * runs, code); a TEXT_FILE (any UTF-8 file, e.g. English prose) replaces it. The text is
 * repeated up to MIN_MB (default 8) megabytes and tokenized in one call, best of 5 runs.
 * Prints load time, tokens, bytes per token and MB/s (1 MB = 1e6 bytes). */
#include "tkr_embed.h"
#include "tokenizer/tokenizer.h"
#include "util/platform.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The .inp strings joined by newlines (the separator lines dropped). */
static char *llama_strings(const char *data_dir, size_t *len, tkr_error *err) {
    char path[4096];
    snprintf(path, sizeof path, "%s/tokenizers/llama.cpp-vocab-tests/ggml-vocab-qwen2.gguf.inp",
             data_dir);
    char *buf = NULL;
    if (tkr_read_file(path, (size_t)1 << 20, &buf, len, err) != TKR_OK) return NULL;
    const char *sep = "\n__ggml_vocab_test__\n";
    size_t w = 0, sl = strlen(sep);
    for (size_t r = 0; r < *len;) {
        if (r + sl <= *len && !memcmp(buf + r, sep, sl)) {
            buf[w++] = '\n';
            r += sl;
        } else {
            buf[w++] = buf[r++];
        }
    }
    *len = w;
    return buf;
}

int main(int argc, char **argv) {
    const char *data = getenv("TKR_TEST_DATA");
    if (!data || !*data) data = "../shared/data";
    char dflt_dir[4096];
    snprintf(dflt_dir, sizeof dflt_dir, "%s/tokenizers/qwen2", data);
    const char *dir = argc > 1 ? argv[1] : dflt_dir;
    double min_mb = argc > 3 ? atof(argv[3]) : 8.0;
    tkr_error err;
    size_t len = 0;
    char *unit = argc > 2 ? NULL : llama_strings(data, &len, &err);
    if (argc > 2 && tkr_read_file(argv[2], (size_t)1 << 30, &unit, &len, &err) != TKR_OK) unit = NULL;
    if (!unit || !len) {
        fprintf(stderr, "no text: %s\n", unit ? "empty" : err.message);
        return 1;
    }
    size_t reps = (size_t)(min_mb * 1e6 / (double)len) + 1, total = reps * len;
    char *text = malloc(total);
    if (!text) return 1;
    for (size_t i = 0; i < reps; i++) memcpy(text + i * len, unit, len);
    free(unit);

    double t0 = tkr_now_seconds();
    tkr_tokenizer *tok = NULL;
    if (tkr_tokenizer_load(dir, &tok, &err) != TKR_OK) {
        fprintf(stderr, "%s\n", err.message);
        return 1;
    }
    double load_s = tkr_now_seconds() - t0;
    double best = 1e30;
    size_t n = 0;
    for (int run = 0; run < 5; run++) {
        int32_t *ids = NULL;
        t0 = tkr_now_seconds();
        if (tkr_tokenize(tok, text, total, &ids, &n, &err) != TKR_OK) {
            fprintf(stderr, "%s\n", err.message);
            return 1;
        }
        double dt = tkr_now_seconds() - t0;
        if (dt < best) best = dt;
        free(ids);
    }
    printf("tokenizer: %s (load %.3f s, %d ids)\n", dir, load_s, tkr_tokenizer_vocab_size(tok));
    printf("text: %s, %zu bytes x %zu = %.2f MB -> %zu tokens (%.2f bytes/token)\n",
           argc > 2 ? argv[2] : "llama.cpp qwen2 test strings", len, reps, (double)total / 1e6, n,
           (double)total / (double)(n ? n : 1));
    printf("tokenize: %.3f s, %.2f MB/s (one thread, best of 5)\n", best, (double)total / 1e6 / best);
    tkr_tokenizer_free(tok);
    free(text);
    return 0;
}
