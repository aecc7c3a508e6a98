/* fuzz_gguf.c - libFuzzer harness for the GGUF reader (src/io/gguf.c) and what reads its
 * metadata (src/io/config_gguf.c, the name mapping in src/io/weights_gguf.c).
 *
 * `make fuzz` builds and runs it with the others (tests/fuzz/run.sh). By hand, from the repo
 * root (seeds in tests/fuzz/corpus/gguf, crashes committed there as regression inputs):
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -std=c11 -D_POSIX_C_SOURCE=200809L \
 *     -Iinclude -Isrc tests/fuzz/fuzz_gguf.c src/io/gguf.c src/io/tensor.c src/io/config_gguf.c \
 *     src/io/weights_gguf.c src/io/weights.c src/io/safetensors.c src/util/error.c \
 *     src/util/platform.c -ljansson -lm -o build/fuzz_gguf
 *   mkdir -p /tmp/gguf-corpus && build/fuzz_gguf /tmp/gguf-corpus tests/fuzz/corpus/gguf \
 *     -max_len=65536 -max_total_time=300
 *
 * The input is the whole file image (exactly sized, so ASan sees any read past it). A file that
 * opens is then read everywhere a caller could read it: every value through every getter, every
 * tensor byte, the config and the name mapping. */
#include "io/config.h"
#include "io/gguf.h"
#include "io/weights.h"

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* Sink so that reads are not optimised away. */
static volatile uint64_t sink;

static void read_metadata(const tkr_gguf *g) {
    for (size_t i = 0; i < tkr_gguf_kv_count(g); i++) {
        const char *key = tkr_gguf_kv_key(g, i);
        int64_t v;
        double f;
        bool b;
        const char *s;
        size_t len;
        tkr_gguf_type et;
        sink += strlen(key) + (uint64_t)tkr_gguf_kv_type(g, i);
        sink += tkr_gguf_find(g, key) == (int64_t)i;
        if (tkr_gguf_get_int(g, key, &v)) sink += (uint64_t)v;
        if (tkr_gguf_get_float(g, key, &f)) sink += (uint64_t)(f == f);
        if (tkr_gguf_get_bool(g, key, &b)) sink += b;
        if (tkr_gguf_get_str(g, key, &s, &len))
            for (size_t k = 0; k < len; k++) sink += (uint8_t)s[k];
        const uint8_t *raw;
        if (tkr_gguf_kv_raw(g, i, &raw, &len))
            for (size_t k = 0; k < len; k++) sink += raw[k];
        if (tkr_gguf_get_arr(g, key, &et, &len)) {
            size_t n = len < 4096 ? len : 4096;
            for (size_t k = 0; k <= n; k++) {   /* one past the end: must be refused */
                if (tkr_gguf_arr_int(g, key, k, &v)) sink += (uint64_t)v;
                if (tkr_gguf_arr_float(g, key, k, &f)) sink += (uint64_t)(f == f);
                if (tkr_gguf_arr_str(g, key, k, &s, &len))
                    for (size_t j = 0; j < len; j++) sink += (uint8_t)s[j];
            }
        }
    }
}

static void read_tensors(const tkr_gguf *g) {
    char buf[128];
    for (size_t i = 0; i < tkr_gguf_tensor_count(g); i++) {
        const tkr_tensor *t = tkr_gguf_tensor_at(g, i);
        const uint8_t *p = t->data;
        if (t->nbytes) sink += p[0] + p[t->nbytes - 1];
        sink += tkr_gguf_tensor(g, t->name) == t;
        sink += tkr_tensor_numel(t);
        tkr_weights_gguf_canonical(t->name, buf, sizeof buf);
        sink += strlen(buf);
    }
}

/* A minimal valid qwen2vl text model (hidden 32, 4 heads, vocab from a 1-token list, no tensors), so that
 * an input that is an mmproj goes through the vision half of tkr_config_from_gguf. */
static uint8_t text_img[1024];
static size_t text_len;

static void put(uint64_t v, int n) {
    for (int i = 0; i < n; i++) text_img[text_len++] = (uint8_t)(v >> (8 * i));
}
static void put_str(const char *s) {
    put(strlen(s), 8);
    memcpy(text_img + text_len, s, strlen(s));
    text_len += strlen(s);
}
static void put_u32_kv(const char *k, uint32_t v) {
    put_str(k);
    put(TKR_GGUF_UINT32, 4);
    put(v, 4);
}

static void build_text_model(void) {
    text_len = 0;
    put(0x46554747u, 4), put(3, 4), put(0, 8), put(7, 8);
    put_str("general.architecture"), put(TKR_GGUF_STRING, 4), put_str("qwen2vl");
    put_u32_kv("qwen2vl.embedding_length", 32);
    put_u32_kv("qwen2vl.block_count", 1);
    put_u32_kv("qwen2vl.attention.head_count", 4);
    put_u32_kv("qwen2vl.feed_forward_length", 32);
    put_str("qwen2vl.rope.dimension_sections"), put(TKR_GGUF_ARRAY, 4), put(TKR_GGUF_INT32, 4);
    put(4, 8), put(1, 4), put(1, 4), put(2, 4), put(0, 4);
    put_str("tokenizer.ggml.tokens"), put(TKR_GGUF_ARRAY, 4), put(TKR_GGUF_STRING, 4);
    put(1, 8), put_str("a");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!text_len) build_text_model();
    tkr_gguf *g = NULL;
    tkr_error err;
    if (tkr_gguf_open_memory(data, size, "fuzz.gguf", NULL, &g, &err) != TKR_OK) {
        /* every failure names the input */
        if (strncmp(err.message, "fuzz.gguf: ", 11) != 0) __builtin_trap();
        return 0;
    }
    read_metadata(g);
    read_tensors(g);
    tkr_model_config cfg;
    if (tkr_config_from_gguf(g, NULL, &cfg, &err) == TKR_OK) sink += (uint64_t)cfg.text.vocab_size;
    tkr_gguf *text = NULL;
    if (tkr_gguf_open_memory(text_img, text_len, "text.gguf", NULL, &text, &err) != TKR_OK)
        __builtin_trap();   /* the fixed text model must be valid */
    if (tkr_config_from_gguf(text, g, &cfg, &err) == TKR_OK) sink += (uint64_t)cfg.vision.mlp_hidden;
    tkr_gguf_close(text);
    tkr_gguf_close(g);
    return 0;
}
