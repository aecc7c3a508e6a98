/* test_tok_gguf.c - the tokenizer from GGUF metadata (tok_gguf.c) against the HF-file tokenizer:
 *   - llama.cpp's converter output (tests/fixtures/gguf/m4-f32.gguf, its tokenizer.ggml.* keys
 *     written from the Qwen2-VL tokenizer) gives HF's ids for every string of
 *     tests/fixtures/tokenizer/hf_reference.jsonl, and the same ids as the HF-file tokenizer;
 *   - our export (tkr_tokenizer_export) written by the GGUF writer and read back does too, and
 *     its arrays equal llama.cpp's (tokens, types, merges), so `quantize` writes the same keys;
 *   - bad metadata: another tokenizer model or pre-tokenizer, mismatched array lengths, an
 *     unknown token type, a merge that is not "a b" or names no token, invalid UTF-8. */
#include "io/gguf.h"
#include "io/gguf_write.h"
#include "test.h"
#include "tokenizer/tokenizer.h"

#include <jansson.h>
#include <unistd.h>

#define LLAMA_GGUF "tests/fixtures/gguf/m4-f32.gguf"

typedef struct {
    char **text;
    size_t *len;
    json_t **ids;
    size_t n;
} cases;

static void load_cases(cases *c) {
    memset(c, 0, sizeof *c);
    FILE *f = fopen("tests/fixtures/tokenizer/hf_reference.jsonl", "r");
    CHECK(f != NULL, "hf_reference.jsonl missing");
    if (!f) return;
    char line[1 << 16];
    while (fgets(line, sizeof line, f)) {
        json_error_t je;
        json_t *o = json_loads(line, 0, &je);
        if (!o) continue;
        c->text = realloc(c->text, (c->n + 1) * sizeof *c->text);
        c->len = realloc(c->len, (c->n + 1) * sizeof *c->len);
        c->ids = realloc(c->ids, (c->n + 1) * sizeof *c->ids);
        json_t *t = json_object_get(o, "text");
        c->len[c->n] = json_string_length(t);
        c->text[c->n] = malloc(c->len[c->n] + 1);
        memcpy(c->text[c->n], json_string_value(t), c->len[c->n] + 1);
        c->ids[c->n] = json_incref(json_object_get(o, "ids"));
        json_decref(o);
        c->n++;
    }
    fclose(f);
    CHECK(c->n >= 40, "only %zu reference strings", c->n);
}

static void free_cases(cases *c) {
    for (size_t i = 0; i < c->n; i++) {
        free(c->text[i]);
        json_decref(c->ids[i]);
    }
    free(c->text);
    free(c->len);
    free(c->ids);
}

/* The HF-file tokenizer of the fixtures: shared vocab/merges + the Qwen2-VL added tokens. */
static tkr_tokenizer *hf_tokenizer(char *dir) {
    strcpy(dir, "/tmp/tkr-tokgguf-XXXXXX");
    if (!mkdtemp(dir)) return NULL;
    char a[4200], b[4200];
    const char *files[4][2] = {{"tokenizers/qwen2/vocab.json", "vocab.json"},
                               {"tokenizers/qwen2/merges.txt", "merges.txt"},
                               {NULL, "tokenizer_config.json"},
                               {NULL, "added_tokens.json"}};
    char cwd[4096];
    if (!getcwd(cwd, sizeof cwd)) return NULL;
    for (int i = 0; i < 4; i++) {
        if (files[i][0]) snprintf(a, sizeof a, "%s", test_data_path(files[i][0]));
        else snprintf(a, sizeof a, "%s/tests/fixtures/qwen2vl/%s", cwd, files[i][1]);
        snprintf(b, sizeof b, "%s/%s", dir, files[i][1]);
        if (symlink(a, b) != 0) return NULL;
    }
    tkr_tokenizer *tok = NULL;
    tkr_error err;
    if (tkr_tokenizer_load(dir, &tok, &err) != TKR_OK) {
        fprintf(stderr, "  %s\n", err.message);
        return NULL;
    }
    return tok;
}

static void rm_dir(const char *dir) {
    const char *names[] = {"vocab.json", "merges.txt", "tokenizer_config.json", "added_tokens.json",
                           "t.gguf", "bad.gguf"};
    char p[4200];
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, names[i]);
        unlink(p);
    }
    rmdir(dir);
}

/* Every reference string: tok gives HF's ids, and the same as ref (when given). */
static size_t check_all(const tkr_tokenizer *tok, const tkr_tokenizer *ref, const cases *c,
                        const char *what) {
    size_t ok = 0;
    for (size_t i = 0; i < c->n; i++) {
        int32_t *ids = NULL, *rids = NULL;
        size_t n = 0, rn = 0;
        tkr_error err;
        tkr_status st = tkr_tokenize(tok, c->text[i], c->len[i], &ids, &n, &err);
        int same = st == TKR_OK && n == json_array_size(c->ids[i]);
        for (size_t k = 0; same && k < n; k++)
            same = ids[k] == (int32_t)json_integer_value(json_array_get(c->ids[i], k));
        if (ref && same && tkr_tokenize(ref, c->text[i], c->len[i], &rids, &rn, &err) == TKR_OK)
            same = rn == n && !memcmp(rids, ids, n * sizeof *ids);
        if (!same) fprintf(stderr, "  %s: string %zu differs ('%.40s')\n", what, i, c->text[i]);
        ok += same;
        tkr_free(ids);
        tkr_free(rids);
    }
    return ok;
}

static void test_llama_cpp_converted(void) {
    cases c;
    load_cases(&c);
    char dir[64];
    tkr_tokenizer *ref = hf_tokenizer(dir);
    CHECK(ref != NULL, "HF tokenizer did not load");
    tkr_gguf *g = NULL;
    tkr_error err;
    CHECK(tkr_gguf_open(LLAMA_GGUF, 1, NULL, &g, &err) == TKR_OK, "%s", err.message);
    tkr_tokenizer *tok = NULL;
    if (g) CHECK(tkr_tokenizer_from_gguf(g, NULL, &tok, &err) == TKR_OK, "%s", err.message);
    if (tok && ref) {
        size_t ok = check_all(tok, ref, &c, "llama.cpp GGUF");
        CHECK(ok == c.n, "%zu of %zu strings match", ok, c.n);
        CHECK(tkr_tokenizer_vocab_size(tok) == tkr_tokenizer_vocab_size(ref), "sizes %d vs %d",
              tkr_tokenizer_vocab_size(tok), tkr_tokenizer_vocab_size(ref));
        CHECK(tkr_tokenizer_token_id(tok, "<|image_pad|>") == 151655, "image_pad id");
    }
    /* our export = llama.cpp's arrays, element for element */
    tkr_tok_export e;
    if (ref && g && tkr_tokenizer_export(ref, 151936, &e, &err) == TKR_OK) {
        tkr_gguf_type et;
        size_t n = 0, nm = 0, bad = 0;
        CHECK(tkr_gguf_get_arr(g, "tokenizer.ggml.tokens", &et, &n) && n == e.n_tokens,
              "token count %zu vs %zu", n, e.n_tokens);
        CHECK(tkr_gguf_get_arr(g, "tokenizer.ggml.merges", &et, &nm) && nm == e.n_merges,
              "merge count %zu vs %zu", nm, e.n_merges);
        for (size_t i = 0; i < n && i < e.n_tokens; i++) {
            const char *s;
            size_t len;
            int64_t t;
            if (!tkr_gguf_arr_str(g, "tokenizer.ggml.tokens", i, &s, &len) || len != strlen(e.tokens[i]) ||
                memcmp(s, e.tokens[i], len) || !tkr_gguf_arr_int(g, "tokenizer.ggml.token_type", i, &t) ||
                t != e.types[i])
                bad++;
        }
        for (size_t i = 0; i < nm && i < e.n_merges; i++) {
            const char *s;
            size_t len;
            if (!tkr_gguf_arr_str(g, "tokenizer.ggml.merges", i, &s, &len) ||
                len != strlen(e.merges[i]) || memcmp(s, e.merges[i], len))
                bad++;
        }
        CHECK(bad == 0, "%zu tokens/types/merges differ from llama.cpp's", bad);
        tkr_tokenizer_export_free(&e);
    }
    tkr_tokenizer_free(tok);
    tkr_tokenizer_free(ref);
    tkr_gguf_close(g);
    rm_dir(dir);
    free_cases(&c);
}

/* Writes a vocab-only GGUF from an export, with one field altered by `mode`. */
static tkr_status write_vocab(const char *path, const tkr_tok_export *e, int mode, tkr_error *err) {
    tkr_gguf_writer *w = NULL;
    tkr_status st = tkr_gguf_writer_init(&w, err);
    if (st != TKR_OK) return st;
    const char *toks_mod[1] = {"\xff\xfe"};
    char **tokens = e->tokens;
    int32_t *types = e->types;
    char **merges = e->merges;
    size_t nt = e->n_tokens, nm = e->n_merges;
    int32_t saved_type = types[5];
    char *saved_merge = merges[7], *saved_tok = tokens[1000];
    if (mode == 3) nt--;                                /* lengths differ      */
    if (mode == 4) types[5] = 9;                        /* unknown token type  */
    if (mode == 5) merges[7] = (char *)"abc";           /* not "a b"           */
    if (mode == 6) merges[7] = (char *)"zzqqx yyj";     /* names no token      */
    if (mode == 7) tokens[1000] = (char *)toks_mod[0];  /* invalid UTF-8       */
    st = tkr_gguf_set_str(w, "general.architecture", "qwen2vl", err);
    if (st == TKR_OK)
        st = tkr_gguf_set_str(w, "tokenizer.ggml.model", mode == 1 ? "llama" : "gpt2", err);
    if (st == TKR_OK)
        st = tkr_gguf_set_str(w, "tokenizer.ggml.pre", mode == 2 ? "llama3" : "qwen2", err);
    if (st == TKR_OK)
        st = tkr_gguf_set_arr_str(w, "tokenizer.ggml.tokens", (const char *const *)tokens, nt, err);
    if (st == TKR_OK) st = tkr_gguf_set_arr_i32(w, "tokenizer.ggml.token_type", types, e->n_tokens, err);
    if (st == TKR_OK)
        st = tkr_gguf_set_arr_str(w, "tokenizer.ggml.merges", (const char *const *)merges, nm, err);
    types[5] = saved_type;
    merges[7] = saved_merge;
    tokens[1000] = saved_tok;
    if (st == TKR_OK) st = tkr_gguf_writer_begin(w, path, err);
    if (st == TKR_OK) st = tkr_gguf_writer_finish(w, err);
    tkr_gguf_writer_free(w);
    return st;
}

static void test_export_roundtrip_and_errors(void) {
    cases c;
    load_cases(&c);
    char dir[64], path[128];
    tkr_tokenizer *ref = hf_tokenizer(dir);
    CHECK(ref != NULL, "HF tokenizer did not load");
    tkr_tok_export e;
    tkr_error err;
    if (!ref || tkr_tokenizer_export(ref, 151936, &e, &err) != TKR_OK) {
        tkr_tokenizer_free(ref);
        free_cases(&c);
        return;
    }
    CHECK(e.n_tokens == 151936 && e.types[151643] == 3 && e.types[151700] == 5 && e.types[100] == 1,
          "export: %zu tokens, types %d %d %d", e.n_tokens, e.types[151643], e.types[151700],
          e.types[100]);
    snprintf(path, sizeof path, "%s/t.gguf", dir);
    static const struct {
        int mode;
        tkr_status want;
        const char *msg;
    } cases_bad[] = {
        {0, TKR_OK, NULL},
        {1, TKR_ERR_UNSUPPORTED, "only gpt2"},
        {2, TKR_ERR_UNSUPPORTED, "only qwen2"},
        {3, TKR_ERR_FORMAT, "token types"},
        {4, TKR_ERR_FORMAT, "not a token type"},
        {5, TKR_ERR_FORMAT, "is not 'a b'"},
        {6, TKR_ERR_FORMAT, "not in the vocabulary"},
        {7, TKR_ERR_FORMAT, "UTF-8"},
    };
    for (size_t k = 0; k < sizeof cases_bad / sizeof *cases_bad; k++) {
        tkr_status st = write_vocab(path, &e, cases_bad[k].mode, &err);
        CHECK(st == TKR_OK, "write mode %d: %s", cases_bad[k].mode, err.message);
        tkr_gguf *g = NULL;
        tkr_tokenizer *tok = NULL;
        if (st == TKR_OK) st = tkr_gguf_open(path, 1, NULL, &g, &err);
        CHECK(st == TKR_OK, "open mode %d: %s", cases_bad[k].mode, err.message);
        if (st != TKR_OK) continue;
        st = tkr_tokenizer_from_gguf(g, NULL, &tok, &err);
        CHECK(st == cases_bad[k].want, "mode %d: status %d (%s)", cases_bad[k].mode, st,
              st ? err.message : "ok");
        if (st != TKR_OK && cases_bad[k].msg)
            CHECK(strstr(err.message, cases_bad[k].msg) && strstr(err.message, "t.gguf"),
                  "mode %d: message '%s'", cases_bad[k].mode, err.message);
        if (st == TKR_OK && cases_bad[k].mode == 0) {
            size_t ok = check_all(tok, ref, &c, "exported GGUF");
            CHECK(ok == c.n, "%zu of %zu strings match", ok, c.n);
        }
        tkr_tokenizer_free(tok);
        tkr_gguf_close(g);
    }
    tkr_tokenizer_export_free(&e);
    tkr_tokenizer_free(ref);
    rm_dir(dir);
    free_cases(&c);
}

int main(void) {
    RUN(test_llama_cpp_converted);
    RUN(test_export_roundtrip_and_errors);
    return test_summary();
}
