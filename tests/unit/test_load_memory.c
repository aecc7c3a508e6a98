/* test_load_memory.c - the in-memory loaders the fuzzers drive (tkr_tokenizer_load_memory,
 * tkr_weights_open_index_memory) must behave exactly as the directory loaders: every case is
 * written to a temp directory, loaded both ways, and must give the same status, the same
 * message (the label is the directory) and, when it loads, the same tokens or tensors. */
#include "io/weights.h"
#include "test.h"
#include "tokenizer/tokenizer.h"

#include <stdint.h>
#include <unistd.h>

static char tmp[256];

static void tmp_make(void) {
    const char *base = getenv("TMPDIR");
    snprintf(tmp, sizeof tmp, "%s/tkr-memload-XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(tmp)) {
        fprintf(stderr, "FATAL: mkdtemp %s failed\n", tmp);
        printf("FAIL tmpdir\n");
        exit(1);
    }
}

/* Writes (data NULL: removes) tmp/name. */
static void put(const char *name, const void *data, size_t n) {
    char p[512];
    snprintf(p, sizeof p, "%s/%s", tmp, name);
    unlink(p);
    if (!data) return;
    FILE *f = fopen(p, "wb");
    if (!f || (n && fwrite(data, 1, n, f) != n)) {
        fprintf(stderr, "FATAL: cannot write %s\n", p);
        printf("FAIL write\n");
        exit(1);
    }
    fclose(f);
}

static char *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)sz + 1);
    if (b && fread(b, 1, (size_t)sz, f) != (size_t)sz) {
        free(b);
        b = NULL;
    }
    fclose(f);
    if (b) {
        b[sz] = 0;   /* tok_case takes strings */
        *n = (size_t)sz;
    }
    return b;
}

/* ---- tokenizer ----------------------------------------------------------------------------- */

static const char *const tok_files[5] = {"tokenizer.json", "vocab.json", "merges.txt",
                                         "tokenizer_config.json", "added_tokens.json"};

/* The five files (NULL = absent), written to tmp and given as buffers: both loads must agree. */
static void tok_case(const char *const content[5], const tkr_tokenizer_limits *lim,
                     tkr_status want, const char *label) {
    for (int f = 0; f < 5; f++) put(tok_files[f], content[f], content[f] ? strlen(content[f]) : 0);
    tkr_tokenizer_files m = {0};
    const char **d[5] = {&m.tokenizer_json, &m.vocab_json, &m.merges_txt, &m.config_json,
                         &m.added_tokens_json};
    size_t *l[5] = {&m.tokenizer_json_len, &m.vocab_json_len, &m.merges_txt_len,
                    &m.config_json_len, &m.added_tokens_json_len};
    for (int f = 0; f < 5; f++) {
        *d[f] = content[f];
        *l[f] = content[f] ? strlen(content[f]) : 0;
    }
    tkr_tokenizer *a = NULL, *b = NULL;
    tkr_error ea, eb;
    ea.message[0] = eb.message[0] = 0;
    tkr_status sa = tkr_tokenizer_load_ex(tmp, lim, &a, &ea);
    tkr_status sb = tkr_tokenizer_load_memory(&m, tmp, lim, &b, &eb);
    CHECK(sa == want, "%s: directory load gave %d (%s), want %d", label, sa, ea.message, want);
    CHECK(sb == sa, "%s: memory load gave %d, directory %d", label, sb, sa);
    if (sa != TKR_OK)
        CHECK(!strcmp(ea.message, eb.message), "%s: messages differ:\n    dir: %s\n    mem: %s",
              label, ea.message, eb.message);
    if (a && b) {
        static const char text[] = "Hello world, abc abd <|im_start|>caf\xc3\xa9 123\n\xff!";
        int32_t *ia = NULL, *ib = NULL;
        size_t na = 0, nb = 0;
        CHECK(tkr_tokenize(a, text, sizeof text - 1, &ia, &na, &ea) == TKR_OK &&
                  tkr_tokenize(b, text, sizeof text - 1, &ib, &nb, &eb) == TKR_OK,
              "%s: tokenize", label);
        CHECK(na > 0 && na == nb && !memcmp(ia, ib, na * sizeof *ia), "%s: ids differ (%zu, %zu)",
              label, na, nb);
        CHECK(tkr_tokenizer_vocab_size(a) == tkr_tokenizer_vocab_size(b), "%s: vocab size", label);
        free(ia);
        free(ib);
    }
    tkr_tokenizer_free(a);
    tkr_tokenizer_free(b);
}

/* A byte-level vocabulary of the 256 single bytes (ids = byte values) plus "ab" 256, "abc" 257. */
static char *tiny_vocab(void) {
    char *s = malloc(8192), *p = s;
    p += sprintf(p, "{");
    for (int c = 0; c < 256; c++) {
        unsigned cp = (unsigned)c;
        if (c <= 0x20) cp = 256u + (unsigned)c;
        else if (c >= 0x7F && c <= 0xA0) cp = 289u + (unsigned)(c - 0x7F);
        else if (c == 0xAD) cp = 323u;
        /* the code point as UTF-8, escaped for JSON where needed */
        if (cp == '"' || cp == '\\') p += sprintf(p, "\"\\%c\": %d, ", (char)cp, c);
        else if (cp < 0x80) p += sprintf(p, "\"%c\": %d, ", (char)cp, c);
        else p += sprintf(p, "\"%c%c\": %d, ", (char)(0xC0 | (cp >> 6)), (char)(0x80 | (cp & 0x3F)), c);
    }
    sprintf(p, "\"ab\": 256, \"abc\": 257}");
    return s;
}

static void test_tokenizer_memory_matches_dir(void) {
    tmp_make();
    char *v = tiny_vocab();
    struct {
        const char *f[5];
        tkr_status want;
        const char *label;
    } cases[] = {
        {{NULL, v, "#version: 0.2\na b\nab c\n", NULL, NULL}, TKR_OK, "slow layout"},
        {{NULL, v, "a b\r\n\r\nab c\r\n", NULL, "{\"<x>\": 300}"}, TKR_OK, "added_tokens.json"},
        {{NULL, v, "a b\n", "{\"added_tokens_decoder\": {\"258\": {\"content\": \"<y>\", "
                            "\"special\": true}}, \"tokenizer_class\": \"Qwen2Tokenizer\"}",
          "{\"<x>\": 256}"}, TKR_OK, "the config wins"},
        {{NULL, NULL, NULL, NULL, NULL}, TKR_ERR_IO, "nothing"},
        {{NULL, v, NULL, NULL, NULL}, TKR_ERR_IO, "no merges.txt"},
        {{NULL, v, "#version: 0.2\na b\nab q9\n", NULL, NULL}, TKR_ERR_FORMAT, "bad merge"},
        {{NULL, v, "a b c\n", NULL, NULL}, TKR_ERR_FORMAT, "merge line"},
        {{NULL, "{\"a\": 0, \"b\": 1", "", NULL, NULL}, TKR_ERR_FORMAT, "bad JSON"},
        {{NULL, "{\"a\": 0, \"b\": 1}", "", NULL, NULL}, TKR_ERR_FORMAT, "missing bytes"},
        {{NULL, v, "a b\n", NULL, "{\"<x>\": 256}"}, TKR_ERR_FORMAT, "added reuses an id"},
        {{NULL, v, "a b\n", NULL, "{\"<x>\": 1e400}"}, TKR_ERR_FORMAT, "added_tokens.json JSON"},
        {{NULL, v, "a b\n", "[1]", NULL}, TKR_ERR_FORMAT, "config not an object"},
        {{NULL, v, "a b\n", "{\"tokenizer_class\": \"GPT2Tokenizer\"}", NULL}, TKR_ERR_UNSUPPORTED,
         "tokenizer_class"},
        {{"{\"model\": ", v, "a b\n", NULL, NULL}, TKR_ERR_FORMAT, "tokenizer.json JSON"},
        {{"{\"model\": {\"type\": \"WordPiece\", \"vocab\": {}}}", NULL, NULL, NULL, NULL},
         TKR_ERR_UNSUPPORTED, "WordPiece"},
        {{"{\"model\": {\"type\": \"BPE\", \"vocab\": {}, \"merges\": []}, \"normalizer\": "
          "{\"type\": \"NFKC\"}}", NULL, NULL, "{}", NULL}, TKR_ERR_UNSUPPORTED, "NFKC"},
        {{"", NULL, NULL, NULL, NULL}, TKR_ERR_FORMAT, "empty tokenizer.json"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        tok_case(cases[i].f, NULL, cases[i].want, cases[i].label);
    tkr_tokenizer_limits lim = tkr_tokenizer_default_limits();
    lim.max_file_bytes = 1000;
    const char *big[5] = {NULL, v, "a b\n", NULL, NULL};
    tok_case(big, &lim, TKR_ERR_LIMIT, "file size limit");
    lim = tkr_tokenizer_default_limits();
    lim.max_ids = 200;
    tok_case(big, &lim, TKR_ERR_LIMIT, "id limit");
    free(v);
    for (int f = 0; f < 5; f++) put(tok_files[f], NULL, 0);
    rmdir(tmp);
}

/* The shared Qwen2 files and the Qwen2-VL config: identical ids either way. */
static void test_tokenizer_memory_qwen2(void) {
    size_t nv = 0, nm = 0, nc = 0, na = 0;
    char *v = slurp(test_data_path("tokenizers/qwen2/vocab.json"), &nv);
    char *m = slurp(test_data_path("tokenizers/qwen2/merges.txt"), &nm);
    char *c = slurp("tests/fixtures/qwen2vl/tokenizer_config.json", &nc);
    char *a = slurp("tests/fixtures/qwen2vl/added_tokens.json", &na);
    CHECK(v && m && c && a, "the Qwen2 tokenizer files (shared data, tests/fixtures/qwen2vl)");
    if (v && m && c && a) {
        tmp_make();
        const char *f[5] = {NULL, v, m, c, a};
        tok_case(f, NULL, TKR_OK, "qwen2");
        for (int k = 0; k < 5; k++) put(tok_files[k], NULL, 0);
        rmdir(tmp);
    }
    free(v);
    free(m);
    free(c);
    free(a);
}

/* ---- weights ------------------------------------------------------------------------------- */

/* A one-tensor safetensors image: F32 [2], 8 data bytes. */
static size_t make_shard(uint8_t *buf, const char *tensor) {
    char hdr[128];
    int n = snprintf(hdr, sizeof hdr,
                     "{\"%s\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", tensor);
    while (n % 8) hdr[n++] = ' ';
    for (int i = 0; i < 8; i++) buf[i] = (uint8_t)((uint64_t)n >> (8 * i));
    memcpy(buf + 8, hdr, (size_t)n);
    memset(buf + 8 + n, 0, 8);
    return 8 + (size_t)n + 8;
}

static void test_weights_index_memory_matches_dir(void) {
    tmp_make();
    static uint8_t sa[256], sb[256];
    tkr_weights_shard_image img[2] = {{"model-00001-of-00002.safetensors", sa, make_shard(sa, "a")},
                                      {"model-00002-of-00002.safetensors", sb, make_shard(sb, "b")}};
    put(img[0].name, sa, img[0].size);
    put(img[1].name, sb, img[1].size);
    struct {
        const char *index;
        tkr_status want;
        int same_message;
    } cases[] = {
        {"{\"weight_map\": {\"a\": \"model-00001-of-00002.safetensors\", "
         "\"b\": \"model-00002-of-00002.safetensors\"}}", TKR_OK, 1},
        {"{\"weight_map\": {\"a\": \"model-00001-of-00002.safetensors\"}}", TKR_OK, 1},
        {"{\"weight_map\": {\"a\": \"model-00002-of-00002.safetensors\"}}", TKR_ERR_FORMAT, 1},
        {"{\"weight_map\": {\"a\": \"../model-00001-of-00002.safetensors\"}}", TKR_ERR_FORMAT, 1},
        {"{\"weight_map\": {\"a\": 3}}", TKR_ERR_FORMAT, 1},
        {"{\"weight_map\": {}}", TKR_ERR_FORMAT, 1},
        {"{\"weight_map\": ", TKR_ERR_FORMAT, 1},
        {"", TKR_ERR_FORMAT, 1},
        /* a shard not there: the file error names errno, the memory one "no such shard" */
        {"{\"weight_map\": {\"a\": \"model-00003-of-00003.safetensors\"}}", TKR_ERR_IO, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        put("model.safetensors.index.json", cases[i].index, strlen(cases[i].index));
        tkr_weights *a = NULL, *b = NULL;
        tkr_error ea, eb;
        ea.message[0] = eb.message[0] = 0;
        tkr_status ra = tkr_weights_open_ex(tmp, 0, NULL, &a, &ea);
        tkr_status rb = tkr_weights_open_index_memory(cases[i].index, strlen(cases[i].index), img,
                                                      2, tmp, NULL, &b, &eb);
        CHECK(ra == cases[i].want && rb == ra, "case %zu: dir %d (%s), memory %d (%s), want %d", i,
              ra, ea.message, rb, eb.message, cases[i].want);
        if (ra != TKR_OK && cases[i].same_message)
            CHECK(!strcmp(ea.message, eb.message), "case %zu: messages differ:\n    dir: %s\n    mem: %s",
                  i, ea.message, eb.message);
        if (a && b) {
            /* case 0 lists both shards, case 1 only the first */
            size_t want = i == 0 ? 2 : 1;
            CHECK(tkr_weights_count(a) == want && tkr_weights_count(b) == want,
                  "case %zu: %zu and %zu tensors, want %zu", i, tkr_weights_count(a),
                  tkr_weights_count(b), want);
            const tkr_tensor *t = tkr_weights_get(b, "a");
            CHECK(t && t->nbytes == 8 && (const uint8_t *)t->data >= sa &&
                      (const uint8_t *)t->data + 8 <= sa + img[0].size,
                  "case %zu: tensor a lies in its buffer", i);
            t = tkr_weights_get(b, "b");
            CHECK(want == 1 ? !t : t && (const uint8_t *)t->data >= sb &&
                                       (const uint8_t *)t->data + 8 <= sb + img[1].size,
                  "case %zu: tensor b", i);
        }
        tkr_weights_free(a);
        tkr_weights_free(b);
    }
    tkr_weights_limits lim = tkr_weights_default_limits();
    lim.max_index_bytes = 10;
    tkr_weights *w = NULL;
    tkr_error e;
    const char *ix = "{\"weight_map\": {\"a\": \"model-00001-of-00002.safetensors\"}}";
    put("model.safetensors.index.json", ix, strlen(ix));
    tkr_status ra = tkr_weights_open_ex(tmp, 0, &lim, &w, &e);
    char msg[sizeof e.message];
    memcpy(msg, e.message, sizeof msg);
    tkr_status rb = tkr_weights_open_index_memory(ix, strlen(ix), img, 2, tmp, &lim, &w, &e);
    CHECK(ra == TKR_ERR_LIMIT && rb == ra && !w && !strcmp(msg, e.message),
          "index size limit: %d (%s), %d (%s)", ra, msg, rb, e.message);
    put("model.safetensors.index.json", NULL, 0);
    put(img[0].name, NULL, 0);
    put(img[1].name, NULL, 0);
    rmdir(tmp);
}

int main(void) {
    RUN(test_tokenizer_memory_matches_dir);
    RUN(test_tokenizer_memory_qwen2);
    RUN(test_weights_index_memory_matches_dir);
    return test_summary();
}
