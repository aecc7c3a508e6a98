/* test_tokenizer.c - the Qwen2 byte-level BPE tokenizer against llama.cpp's and HF's token ids,
 * both file layouts, added-token rules, invalid UTF-8, limits and load errors.
 *
 * Expected ids come from outside this code: llama.cpp's ggml-vocab-*.out (shared data), the
 * spec's Ops-MM prompt, and tests/fixtures/tokenizer/hf_reference.jsonl (HF tokenizers). The
 * few hand-written expectations (pre-tokenizer splits, added-token flags) were checked against
 * HF tokenizers 0.22 when written; the comment beside each says so. */
#define _XOPEN_SOURCE 700
#include "test.h"
#include "tokenizer/tok_internal.h"
#include "tokenizer/tokenizer.h"

#include <jansson.h>
#include <pthread.h>
#include <stdint.h>
#include <time.h>
#include <unistd.h>
#include <utf8proc.h>

/* ---- helpers --------------------------------------------------------------------------------- */

typedef struct {
    char *text;
    size_t len;
    int32_t *ids;
    size_t n;
} tcase;

typedef struct {
    tcase *c;
    size_t n;
} tcases;

static void tcases_free(tcases *t) {
    for (size_t i = 0; i < t->n; i++) {
        free(t->c[i].text);
        free(t->c[i].ids);
    }
    free(t->c);
    t->c = NULL;
    t->n = 0;
}

static void tcases_add(tcases *t, const char *text, size_t len, const int32_t *ids, size_t n) {
    t->c = realloc(t->c, (t->n + 1) * sizeof *t->c);
    tcase *c = &t->c[t->n++];
    c->text = malloc(len + 1);
    memcpy(c->text, text, len);
    c->text[len] = 0;
    c->len = len;
    c->ids = malloc((n ? n : 1) * sizeof *c->ids);
    if (n) memcpy(c->ids, ids, n * sizeof *ids);
    c->n = n;
}

static char *slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)sz + 1);
    size_t got = fread(buf, 1, (size_t)sz, f);
    fclose(f);
    buf[got] = 0;
    if (len) *len = got;
    return buf;
}

static int write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "wb");
    if (!f) return 0;
    fputs(text, f);
    return fclose(f) == 0;
}

/* llama.cpp's vocab test files: .inp holds the strings, each followed by
 * "\n__ggml_vocab_test__\n"; .out one line per string of space-separated ids. */
static int load_llama_vectors(const char *base, tcases *out) {
    char p_inp[512], p_out[512];
    snprintf(p_inp, sizeof p_inp, "tokenizers/llama.cpp-vocab-tests/%s.inp", base);
    char *inp = slurp(test_data_path(p_inp), NULL);
    snprintf(p_out, sizeof p_out, "tokenizers/llama.cpp-vocab-tests/%s.out", base);
    char *outs = slurp(test_data_path(p_out), NULL);
    if (!inp || !outs) {
        fprintf(stderr, "  missing shared data %s.inp/.out under %s\n", base, test_data_dir());
        free(inp);
        free(outs);
        return 0;
    }
    const char *sep = "\n__ggml_vocab_test__\n";
    char *p = inp, *o = outs;
    for (;;) {
        char *e = strstr(p, sep);
        if (!e) break;
        char *eol = strchr(o, '\n');
        size_t ol = eol ? (size_t)(eol - o) : strlen(o);
        int32_t ids[4096];
        size_t n = 0;
        char *q = o;
        while (q < o + ol && n < 4096) {
            char *end;
            long v = strtol(q, &end, 10);
            if (end == q) break;
            ids[n++] = (int32_t)v;
            q = end;
        }
        tcases_add(out, p, (size_t)(e - p), ids, n);
        p = e + strlen(sep);
        if (!eol) break;
        o = eol + 1;
    }
    free(inp);
    free(outs);
    return 1;
}

/* JSON lines {"text": ..., "ids": [...]} */
static int load_jsonl(const char *path, tcases *out) {
    char *buf = slurp(path, NULL);
    if (!buf) return 0;
    for (char *line = buf; line && *line;) {
        char *nl = strchr(line, '\n');
        if (nl) *nl = 0;
        if (*line) {
            json_error_t je;
            json_t *o = json_loads(line, JSON_ALLOW_NUL, &je);
            json_t *t = json_object_get(o, "text"), *ids = json_object_get(o, "ids");
            if (json_is_string(t) && json_is_array(ids)) {
                size_t n = json_array_size(ids);
                int32_t *v = malloc((n ? n : 1) * sizeof *v);
                for (size_t i = 0; i < n; i++)
                    v[i] = (int32_t)json_integer_value(json_array_get(ids, i));
                tcases_add(out, json_string_value(t), json_string_length(t), v, n);
                free(v);
            } else {
                fprintf(stderr, "  %s: bad line: %.80s\n", path, line);
            }
            json_decref(o);
        }
        line = nl ? nl + 1 : NULL;
    }
    free(buf);
    return 1;
}

/* The strings of tests/fixtures/tokenizer/strings.json (ids unknown: n = 0). */
static int load_strings(tcases *out) {
    json_error_t je;
    json_t *arr = json_load_file("tests/fixtures/tokenizer/strings.json", JSON_ALLOW_NUL, &je);
    if (!json_is_array(arr)) {
        fprintf(stderr, "  tests/fixtures/tokenizer/strings.json: %s\n", je.text);
        json_decref(arr);
        return 0;
    }
    size_t i;
    json_t *s;
    json_array_foreach(arr, i, s) tcases_add(out, json_string_value(s), json_string_length(s), NULL, 0);
    json_decref(arr);
    return 1;
}

static void print_ids(const char *label, const int32_t *ids, size_t n) {
    fprintf(stderr, "    %s (%zu):", label, n);
    for (size_t i = 0; i < n && i < 40; i++) fprintf(stderr, " %d", ids[i]);
    fprintf(stderr, n > 40 ? " ...\n" : "\n");
}

/* Tokenizes text and compares with want; prints both on mismatch. Returns 1 if equal. */
static int check_ids(const tkr_tokenizer *tok, const char *text, size_t len, const int32_t *want,
                     size_t n_want, const char *what) {
    int32_t *ids = NULL;
    size_t n = 0;
    tkr_error e;
    tkr_status st = tkr_tokenize(tok, text, len, &ids, &n, &e);
    CHECK(st == TKR_OK, "%s: tokenize failed: %s", what, e.message);
    int same = st == TKR_OK && n == n_want && (n == 0 || !memcmp(ids, want, n * sizeof *ids));
    if (!same) {
        fprintf(stderr, "  %s: ids differ for \"%.*s\"\n", what, (int)(len > 80 ? 80 : len), text);
        print_ids("want", want, n_want);
        print_ids("got ", ids, n);
    }
    free(ids);
    return same;
}

/* A model-like tokenizer dir in a temp dir: symlinks to the shared Qwen2 vocab.json and
 * merges.txt plus the Qwen2-VL tokenizer_config.json / added_tokens.json fixtures. */
typedef struct {
    char dir[256];
} tmpdir;

static void tmpdir_make(tmpdir *t) {
    const char *base = getenv("TMPDIR");
    snprintf(t->dir, sizeof t->dir, "%s/tkr-tok-XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(t->dir)) {
        fprintf(stderr, "FATAL: mkdtemp %s failed\n", t->dir);
        printf("FAIL tmpdir\n");
        exit(1);
    }
}

static void tmpdir_path(const tmpdir *t, const char *name, char *buf, size_t cap) {
    snprintf(buf, cap, "%s/%s", t->dir, name);
}

static void tmpdir_remove(tmpdir *t) {
    static const char *const names[] = {"vocab.json", "merges.txt", "tokenizer_config.json",
                                        "added_tokens.json", "tokenizer.json"};
    char p[512];
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        tmpdir_path(t, names[i], p, sizeof p);
        unlink(p);
    }
    rmdir(t->dir);
}

static void link_abs(const char *target, const tmpdir *t, const char *name) {
    char abs[4096], p[512];
    if (!realpath(target, abs)) {
        fprintf(stderr, "  cannot resolve %s\n", target);
        return;
    }
    tmpdir_path(t, name, p, sizeof p);
    if (symlink(abs, p) != 0) fprintf(stderr, "  symlink %s failed\n", p);
}

static void make_qwen2vl_dir(tmpdir *t) {
    tmpdir_make(t);
    link_abs(test_data_path("tokenizers/qwen2/vocab.json"), t, "vocab.json");
    link_abs(test_data_path("tokenizers/qwen2/merges.txt"), t, "merges.txt");
    link_abs("tests/fixtures/qwen2vl/tokenizer_config.json", t, "tokenizer_config.json");
    link_abs("tests/fixtures/qwen2vl/added_tokens.json", t, "added_tokens.json");
}

static tkr_tokenizer *load_or_fail(const char *dir) {
    tkr_tokenizer *tok = NULL;
    tkr_error e;
    tkr_status st = tkr_tokenizer_load(dir, &tok, &e);
    CHECK(st == TKR_OK, "load %s: %s", dir, e.message);
    return st == TKR_OK ? tok : NULL;
}

/* ---- reference ids --------------------------------------------------------------------------- */

static void run_llama_vectors(const char *base) {
    tcases tc = {0};
    CHECK(load_llama_vectors(base, &tc), "missing llama.cpp vectors %s", base);
    CHECK(tc.n == 46, "%s: %zu strings, want 46", base, tc.n);
    tkr_tokenizer *tok = load_or_fail(test_data_path("tokenizers/qwen2"));
    if (tok) {
        size_t ok = 0;
        for (size_t i = 0; i < tc.n; i++)
            ok += check_ids(tok, tc.c[i].text, tc.c[i].len, tc.c[i].ids, tc.c[i].n, base);
        CHECK(ok == tc.n, "%s: %zu of %zu strings match", base, ok, tc.n);
    }
    tkr_tokenizer_free(tok);
    tcases_free(&tc);
}

static void test_llama_vectors_qwen2(void) { run_llama_vectors("ggml-vocab-qwen2.gguf"); }

/* DeepSeek-R1-Distill-Qwen has the Qwen2 BPE with other special tokens (<｜begin▁of▁sentence｜>
 * ...); its vectors are plain text, so the Qwen2 files reproduce them: check that premise. */
static void test_llama_vectors_deepseek_r1_qwen(void) {
    char *inp = slurp(test_data_path("tokenizers/llama.cpp-vocab-tests/"
                                     "ggml-vocab-deepseek-r1-qwen.gguf.inp"), NULL);
    CHECK(inp != NULL, "missing deepseek-r1-qwen .inp");
    if (inp) CHECK(!strstr(inp, "<|") && !strstr(inp, "<\xef\xbd\x9c"), "vectors use special tokens");
    free(inp);
    run_llama_vectors("ggml-vocab-deepseek-r1-qwen.gguf");
}

static void test_ops_mm_prompt(void) {
    tmpdir t;
    make_qwen2vl_dir(&t);
    tkr_tokenizer *tok = load_or_fail(t.dir);
    if (tok) {
        const char *prefix =
            "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n";
        const int32_t want_prefix[] = {151644, 8948, 198, 2610, 525, 264, 10950,
                                       17847,  13,   151645, 198, 151644, 872, 198};
        CHECK(check_ids(tok, prefix, strlen(prefix), want_prefix, 14, "prefix"), "prefix ids");
        const char *suffix = "<|im_end|>\n<|im_start|>assistant\n<|endoftext|>";
        const int32_t want_suffix[] = {151645, 198, 151644, 77091, 198, 151643};
        CHECK(check_ids(tok, suffix, strlen(suffix), want_suffix, 6, "suffix"), "suffix ids");
        const char *vis = "<|vision_start|><|image_pad|><|vision_end|>";
        const int32_t want_vis[] = {151652, 151655, 151653};
        CHECK(check_ids(tok, vis, strlen(vis), want_vis, 3, "vision"), "vision ids");
    }
    tkr_tokenizer_free(tok);
    tmpdir_remove(&t);
}

static void test_added_token_ids(void) {
    static const char *const names[] = {
        "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>",
        "<|object_ref_end|>", "<|box_start|>", "<|box_end|>", "<|quad_start|>", "<|quad_end|>",
        "<|vision_start|>", "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>"};
    tmpdir t;
    make_qwen2vl_dir(&t);
    tkr_tokenizer *tok = load_or_fail(t.dir);
    if (tok) {
        CHECK(tkr_tokenizer_vocab_size(tok) == 151657, "vocab size %d", tkr_tokenizer_vocab_size(tok));
        for (int i = 0; i < 14; i++) {
            CHECK(tkr_tokenizer_token_id(tok, names[i]) == 151643 + i, "%s -> %d", names[i],
                  tkr_tokenizer_token_id(tok, names[i]));
            size_t len;
            const char *b = tkr_tokenizer_token_bytes(tok, 151643 + i, &len);
            CHECK(b && len == strlen(names[i]) && !memcmp(b, names[i], len), "bytes of %d", i);
        }
        /* Vocabulary entries by their file form. */
        CHECK(tkr_tokenizer_token_id(tok, "assistant") == 77091, "assistant");
        CHECK(tkr_tokenizer_token_id(tok, "\xc4\x8a") == 198, "Ċ (newline) -> %d",
              tkr_tokenizer_token_id(tok, "\xc4\x8a"));
        CHECK(tkr_tokenizer_token_id(tok, "\xc4\xa0" "are") == 525, "Ġare");
        CHECK(tkr_tokenizer_token_id(tok, "<|no_such|>") == -1, "absent");
        CHECK(tkr_tokenizer_token_id(tok, "") == -1, "empty");
        size_t len;
        const char *b = tkr_tokenizer_token_bytes(tok, 525, &len);
        CHECK(b && len == 4 && !memcmp(b, " are", 4), "bytes of 525");
        CHECK(tkr_tokenizer_token_bytes(tok, 151657, &len) == NULL, "out of range id");
        CHECK(tkr_tokenizer_token_bytes(tok, -1, &len) == NULL, "negative id");
    }
    tkr_tokenizer_free(tok);
    /* The shared Qwen2 config alone has 3 added tokens: 151646 ids. */
    tok = load_or_fail(test_data_path("tokenizers/qwen2"));
    if (tok) {
        CHECK(tkr_tokenizer_vocab_size(tok) == 151646, "qwen2 size %d", tkr_tokenizer_vocab_size(tok));
        CHECK(tkr_tokenizer_token_id(tok, "<|image_pad|>") == -1, "no image_pad in plain Qwen2");
    }
    tkr_tokenizer_free(tok);
    tmpdir_remove(&t);
}

static void test_hf_reference(void) {
    const char *path = "tests/fixtures/tokenizer/hf_reference.jsonl";
    tcases tc = {0};
    int have = load_jsonl(path, &tc);
    CHECK(have, "missing fixture %s (HF reference ids; see tools/gen_reference.py)", path);
    CHECK(!have || tc.n >= 40, "only %zu reference lines", tc.n);
    tmpdir t;
    make_qwen2vl_dir(&t);
    tkr_tokenizer *tok = have ? load_or_fail(t.dir) : NULL;
    size_t ok = 0;
    for (size_t i = 0; tok && i < tc.n; i++)
        ok += check_ids(tok, tc.c[i].text, tc.c[i].len, tc.c[i].ids, tc.c[i].n, "hf_reference");
    CHECK(!tok || ok == tc.n, "hf_reference: %zu of %zu lines match", ok, tc.n);
    tkr_tokenizer_free(tok);
    tmpdir_remove(&t);
    tcases_free(&tc);
}

/* ---- tokenizer.json --------------------------------------------------------------------------- */

static const char qwen2_regex[] =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*"
    "|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

/* Builds the tokenizer.json of the Qwen2-VL tokenizer from the shared files (merges as "a b"
 * strings or as ["a", "b"] pairs). The caller edits it further if it wants. */
static json_t *build_tokenizer_json(int pair_merges) {
    json_error_t je;
    json_t *vocab = json_load_file(test_data_path("tokenizers/qwen2/vocab.json"), 0, &je);
    json_t *added_map = json_load_file("tests/fixtures/qwen2vl/added_tokens.json", 0, &je);
    char *m = slurp(test_data_path("tokenizers/qwen2/merges.txt"), NULL);
    if (!vocab || !added_map || !m) {
        json_decref(vocab);
        json_decref(added_map);
        free(m);
        return NULL;
    }
    json_t *merges = json_array();
    int first = 1;
    for (char *line = m; line && *line;) {
        char *nl = strchr(line, '\n');
        if (nl) *nl = 0;
        if (!(first && !strncmp(line, "#version", 8)) && *line) {
            if (pair_merges) {
                char *sp = strchr(line, ' ');
                *sp = 0;
                json_array_append_new(merges, json_pack("[ss]", line, sp + 1));
            } else {
                json_array_append_new(merges, json_string(line));
            }
        }
        first = 0;
        line = nl ? nl + 1 : NULL;
    }
    free(m);
    json_t *added = json_array();
    const char *key;
    json_t *v;
    json_object_foreach(added_map, key, v)
        json_array_append_new(added, json_pack("{s:I,s:s,s:b,s:b,s:b,s:b,s:b}", "id",
                                               json_integer_value(v), "content", key, "single_word",
                                               0, "lstrip", 0, "rstrip", 0, "normalized", 0,
                                               "special", 1));
    json_decref(added_map);
    json_t *root = json_pack(
        "{s:s, s:o, s:{s:s}, s:{s:s, s:[{s:s, s:{s:s}, s:s, s:b}, {s:s, s:b, s:b, s:b}]},"
        " s:{s:s, s:n, s:n, s:s, s:s, s:b, s:b, s:b, s:o, s:o}}",
        "version", "1.0", "added_tokens", added, "normalizer", "type", "NFC", "pre_tokenizer",
        "type", "Sequence", "pretokenizers", "type", "Split", "pattern", "Regex", qwen2_regex,
        "behavior", "Isolated", "invert", 0, "type", "ByteLevel", "add_prefix_space", 0,
        "trim_offsets", 0, "use_regex", 0, "model", "type", "BPE", "dropout", "unk_token",
        "continuing_subword_prefix", "", "end_of_word_suffix", "", "fuse_unk", 0, "byte_fallback",
        0, "ignore_merges", 0, "vocab", vocab, "merges", merges);
    return root;
}

static int dump_tokenizer_json(json_t *root, const tmpdir *t) {
    char p[512];
    tmpdir_path(t, "tokenizer.json", p, sizeof p);
    return root && json_dump_file(root, p, JSON_COMPACT) == 0;
}

/* All test strings: llama.cpp inputs, strings.json and the HF reference texts. */
static void all_strings(tcases *tc) {
    load_llama_vectors("ggml-vocab-qwen2.gguf", tc);
    load_strings(tc);
    load_jsonl("tests/fixtures/tokenizer/hf_reference.jsonl", tc);
}

static void run_tokenizer_json(int pair_merges) {
    tmpdir slow_dir, json_dir;
    make_qwen2vl_dir(&slow_dir);
    tmpdir_make(&json_dir);
    json_t *root = build_tokenizer_json(pair_merges);
    CHECK(dump_tokenizer_json(root, &json_dir), "writing tokenizer.json");
    json_decref(root);
    tkr_tokenizer *a = load_or_fail(slow_dir.dir), *b = load_or_fail(json_dir.dir);
    tcases tc = {0};
    all_strings(&tc);
    CHECK(tc.n > 150, "only %zu strings", tc.n);
    size_t same = 0;
    for (size_t i = 0; a && b && i < tc.n; i++) {
        int32_t *ia = NULL, *ib = NULL;
        size_t na = 0, nb = 0;
        tkr_error e;
        CHECK(tkr_tokenize(a, tc.c[i].text, tc.c[i].len, &ia, &na, &e) == TKR_OK, "%s", e.message);
        CHECK(tkr_tokenize(b, tc.c[i].text, tc.c[i].len, &ib, &nb, &e) == TKR_OK, "%s", e.message);
        same += na == nb && (na == 0 || !memcmp(ia, ib, na * sizeof *ia));
        free(ia);
        free(ib);
    }
    CHECK(!a || !b || same == tc.n, "tokenizer.json (%s merges): %zu of %zu strings agree",
          pair_merges ? "pair" : "string", same, tc.n);
    if (a && b)
        CHECK(tkr_tokenizer_vocab_size(a) == tkr_tokenizer_vocab_size(b), "sizes %d %d",
              tkr_tokenizer_vocab_size(a), tkr_tokenizer_vocab_size(b));
    tkr_tokenizer_free(a);
    tkr_tokenizer_free(b);
    tcases_free(&tc);
    tmpdir_remove(&slow_dir);
    tmpdir_remove(&json_dir);
}

static void test_tokenizer_json_string_merges(void) { run_tokenizer_json(0); }
static void test_tokenizer_json_pair_merges(void) { run_tokenizer_json(1); }

/* ---- pre-tokenizer and text handling ----------------------------------------------------------- */

typedef struct {
    char buf[1024];
    size_t len;
} split_out;

static int collect_split(void *ctx, size_t start, size_t end) {
    split_out *o = ctx;
    o->len += (size_t)snprintf(o->buf + o->len, sizeof o->buf - o->len, "[%zu,%zu)", start, end);
    return 0;
}

/* Splits checked against HF tokenizers' pre_tokenize_str with the Qwen2 Split (byte offsets
 * converted from its character offsets). */
static void test_pretokenizer_splits(void) {
    static const struct {
        const char *text, *want;
    } cases[] = {
        {"Hello world", "[0,5)[5,11)"},
        {"a  b", "[0,1)[1,2)[2,4)"},                    /* \s+(?!\S) leaves one space */
        {"a   ", "[0,1)[1,4)"},                         /* trailing run kept whole */
        {"x \n\n y", "[0,1)[1,4)[4,6)"},                /* \s*[\r\n]+ then " y" */
        {"I'LL don't", "[0,1)[1,4)[4,8)[8,10)"},        /* contractions, case-insensitive */
        {"'hello", "[0,6)"},                            /* not a contraction: prefix + letters */
        {"123", "[0,1)[1,2)[2,3)"},                     /* digits one by one */
        {" ?!\n\nx", "[0,5)[5,6)"},                     /* ' ?[^\s\p{L}\p{N}]+[\r\n]*' */
        {"\tword", "[0,5)"},                            /* tab is a valid one-char prefix */
        {"\t(x", "[0,1)[1,3)"},
        {"caf\xc3\xa9 \xe4\xb8\xad\xe6\x96\x87", "[0,5)[5,12)"},
        {"a\xc2\xa0\xc2\xa0" "b", "[0,1)[1,3)[3,6)"},   /* NBSP is \s */
        {"\xe2\x80\xa8x", "[0,4)"},                     /* U+2028 is \s but not CR/LF: prefix */
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        split_out o = {{0}, 0};
        tkr_qwen2_pretokenize(cases[i].text, strlen(cases[i].text), collect_split, &o);
        CHECK(!strcmp(o.buf, cases[i].want), "split of case %zu: got %s want %s", i, o.buf,
              cases[i].want);
    }
}

/* Invalid UTF-8: each maximal invalid subsequence becomes one U+FFFD (as Python's
 * decode("utf-8", "replace")); the ids equal those of the repaired text. */
static void test_invalid_utf8(void) {
    static const struct {
        const char *in, *repaired;
        size_t in_len;
    } cases[] = {
        {"a\x80" "b", "a\xef\xbf\xbd" "b", 3},                           /* lone continuation */
        {"\xe2\x82", "\xef\xbf\xbd", 2},                                 /* truncated 3-byte */
        {"x\xe2\x82y", "x\xef\xbf\xbdy", 4},
        {"\xc0\x80", "\xef\xbf\xbd\xef\xbf\xbd", 2},                     /* overlong NUL */
        {"\xe0\x80\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd", 3},     /* overlong 3-byte */
        {"\xed\xa0\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd", 3},     /* surrogate U+D800 */
        {"\xff\xfe", "\xef\xbf\xbd\xef\xbf\xbd", 2},
        {"\xf4\x90\x80\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd", 4}, /* >10FFFF */
        {"\xf0\x9f\x98", "\xef\xbf\xbd", 3},                             /* truncated emoji */
        {"\xf0\x9f\x98<|im_end|>", "\xef\xbf\xbd<|im_end|>", 13},
    };
    tmpdir t;
    make_qwen2vl_dir(&t);
    tkr_tokenizer *tok = load_or_fail(t.dir);
    for (size_t i = 0; tok && i < sizeof cases / sizeof *cases; i++) {
        char *fixed = NULL;
        size_t flen = 0;
        tkr_error e;
        CHECK(tkr_utf8_sanitize(cases[i].in, cases[i].in_len, &fixed, &flen, &e) == TKR_OK, "sanitize");
        CHECK(fixed && flen == strlen(cases[i].repaired) && !memcmp(fixed, cases[i].repaired, flen),
              "repair of case %zu", i);
        free(fixed);
        int32_t *want = NULL;
        size_t nwant = 0;
        CHECK(tkr_tokenize(tok, cases[i].repaired, strlen(cases[i].repaired), &want, &nwant, &e) ==
                  TKR_OK, "%s", e.message);
        CHECK(nwant > 0, "case %zu gives ids", i);
        CHECK(check_ids(tok, cases[i].in, cases[i].in_len, want, nwant, "invalid utf-8"),
              "case %zu", i);
        free(want);
    }
    /* Valid text is left alone (no copy). */
    char *fixed = (char *)1;
    size_t flen = 0;
    tkr_error e;
    CHECK(tkr_utf8_sanitize("ok \xf0\x9f\x98\x80", 7, &fixed, &flen, &e) == TKR_OK && !fixed &&
              flen == 7, "valid text untouched");
    /* Random bytes never crash and always give ids. */
    uint64_t x = 0x1234567;
    char buf[257];
    for (int round = 0; tok && round < 300; round++) {
        size_t n = 1 + round % 256;
        for (size_t k = 0; k < n; k++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            buf[k] = (char)(x >> 24);
        }
        int32_t *ids = NULL;
        size_t nid = 0;
        CHECK(tkr_tokenize(tok, buf, n, &ids, &nid, &e) == TKR_OK && nid > 0, "random %d", round);
        for (size_t k = 0; k < nid; k++)
            CHECK(ids[k] >= 0 && ids[k] < tkr_tokenizer_vocab_size(tok), "id in range");
        free(ids);
    }
    tkr_tokenizer_free(tok);
    tmpdir_remove(&t);
}

/* The bytes of the ids put back together give the NFC of the (repaired) input, and an
 * embedded NUL is an ordinary byte token (byte-level "Ā", id 188). */
static void test_roundtrip_and_nul(void) {
    tmpdir t;
    make_qwen2vl_dir(&t);
    tkr_tokenizer *tok = load_or_fail(t.dir);
    tcases tc = {0};
    all_strings(&tc);
    size_t good = 0;
    for (size_t i = 0; tok && i < tc.n; i++) {
        int32_t *ids = NULL;
        size_t n = 0;
        tkr_error e;
        if (tkr_tokenize(tok, tc.c[i].text, tc.c[i].len, &ids, &n, &e) != TKR_OK) continue;
        char *back = malloc(tc.c[i].len * 4 + 16);
        size_t bl = 0;
        for (size_t k = 0; k < n; k++) {
            size_t l;
            const char *b = tkr_tokenizer_token_bytes(tok, ids[k], &l);
            if (b) memcpy(back + bl, b, l);
            bl += b ? l : 0;
        }
        /* NFC is applied per segment between special tokens; no test string puts a combining
         * mark right after a special token, so NFC of the whole text is the same. */
        utf8proc_uint8_t *nfc = NULL;
        utf8proc_ssize_t nl = utf8proc_map((const utf8proc_uint8_t *)tc.c[i].text,
                                           (utf8proc_ssize_t)tc.c[i].len, &nfc,
                                           UTF8PROC_STABLE | UTF8PROC_COMPOSE);
        int same = nl >= 0 && (size_t)nl == bl && !memcmp(nfc, back, bl);
        if (!same) fprintf(stderr, "  roundtrip differs: \"%.60s\"\n", tc.c[i].text);
        good += same;
        free(nfc);
        free(back);
        free(ids);
    }
    CHECK(!tok || good == tc.n, "roundtrip: %zu of %zu", good, tc.n);
    const int32_t want_nul[] = {64, 188, 65};
    if (tok) CHECK(check_ids(tok, "a\0b", 3, want_nul, 3, "nul"), "NUL is text");
    tkr_tokenizer_free(tok);
    tcases_free(&tc);
    tmpdir_remove(&t);
}

/* 200 kB without a break is one pre-token: BPE must stay fast (heap merge loop). */
static void test_long_words(void) {
    tkr_tokenizer *tok = load_or_fail(test_data_path("tokenizers/qwen2"));
    if (!tok) return;
    size_t n = 200000;
    char *s = malloc(n);
    for (size_t i = 0; i < n; i++) s[i] = "abcdefghij"[(i * 7 + i / 13) % 10];
    int32_t *ids = NULL;
    size_t nid = 0;
    tkr_error e;
    double t0 = (double)clock() / CLOCKS_PER_SEC;
    CHECK(tkr_tokenize(tok, s, n, &ids, &nid, &e) == TKR_OK, "%s", e.message);
    double dt = (double)clock() / CLOCKS_PER_SEC - t0;
    CHECK(nid > 1000 && nid < n, "%zu ids", nid);
    CHECK(dt < 10.0, "long word took %.2f s", dt);
    size_t total = 0;
    for (size_t k = 0; k < nid; k++) {
        size_t l;
        tkr_tokenizer_token_bytes(tok, ids[k], &l);
        total += l;
    }
    CHECK(total == n, "ids cover %zu of %zu bytes", total, n);
    free(ids);
    /* A long run of one letter merges to the longest "aaaa..." tokens. */
    memset(s, 'a', 300);
    CHECK(tkr_tokenize(tok, s, 300, &ids, &nid, &e) == TKR_OK && nid < 300 / 4, "aaaa: %zu ids", nid);
    free(ids);
    free(s);
    tkr_tokenizer_free(tok);
}

/* The model builds prompts piece by piece with tkr_tokenize_append. */
static void test_append_builds_prompt(void) {
    tmpdir t;
    make_qwen2vl_dir(&t);
    tkr_tokenizer *tok = load_or_fail(t.dir);
    if (tok) {
        static const char *const pieces[] = {"<|im_start|>system\n", "You are a helpful assistant.",
                                             "<|im_end|>\n<|im_start|>user\n",
                                             "<|vision_start|>", "<|image_pad|>", "<|vision_end|>",
                                             "a photo of a cat",
                                             "<|im_end|>\n<|im_start|>assistant\n<|endoftext|>"};
        int32_t *ids = NULL;
        size_t n = 0, cap = 0;
        tkr_error e;
        char whole[512] = "";
        for (size_t i = 0; i < sizeof pieces / sizeof *pieces; i++) {
            CHECK(tkr_tokenize_append(tok, pieces[i], strlen(pieces[i]), &ids, &n, &cap, &e) ==
                      TKR_OK, "%s", e.message);
            strcat(whole, pieces[i]);
        }
        CHECK(n == 28, "prompt has %zu ids", n); /* 14 + 3 + "a photo of a cat" 5 + 6 */
        CHECK(check_ids(tok, whole, strlen(whole), ids, n, "append"), "pieces == whole");
        /* Failure leaves the array as it was. */
        size_t before = n;
        CHECK(tkr_tokenize_append(tok, NULL, 5, &ids, &n, &cap, &e) == TKR_ERR_INVALID_ARG, "NULL");
        CHECK(n == before, "n unchanged");
        free(ids);
        /* Empty text: no ids, still a freeable array. */
        CHECK(tkr_tokenize(tok, "", 0, &ids, &n, &e) == TKR_OK && n == 0 && ids, "empty");
        free(ids);
    }
    tkr_tokenizer_free(tok);
    tmpdir_remove(&t);
}

typedef struct {
    const tkr_tokenizer *tok;
    const tcases *tc;
    int mismatches;
} thread_job;

static void *thread_main(void *arg) {
    thread_job *j = arg;
    for (int rep = 0; rep < 3; rep++)
        for (size_t i = 0; i < j->tc->n; i++) {
            int32_t *ids = NULL;
            size_t n = 0;
            tkr_error e;
            if (tkr_tokenize(j->tok, j->tc->c[i].text, j->tc->c[i].len, &ids, &n, &e) != TKR_OK ||
                n != j->tc->c[i].n || (n && memcmp(ids, j->tc->c[i].ids, n * sizeof *ids)))
                j->mismatches++;
            free(ids);
        }
    return NULL;
}

/* One tokenizer, four threads, every result equal to the single-threaded one. */
static void test_threads(void) {
    tkr_tokenizer *tok = load_or_fail(test_data_path("tokenizers/qwen2"));
    tcases tc = {0};
    load_llama_vectors("ggml-vocab-qwen2.gguf", &tc);
    thread_job jobs[4];
    pthread_t th[4];
    for (int i = 0; tok && i < 4; i++) {
        jobs[i].tok = tok;
        jobs[i].tc = &tc;
        jobs[i].mismatches = 0;
        CHECK(pthread_create(&th[i], NULL, thread_main, &jobs[i]) == 0, "thread");
    }
    for (int i = 0; tok && i < 4; i++) {
        pthread_join(th[i], NULL);
        CHECK(jobs[i].mismatches == 0, "thread %d: %d mismatches", i, jobs[i].mismatches);
    }
    tkr_tokenizer_free(tok);
    tcases_free(&tc);
}

/* tok_nfc skips utf8proc for text made of "inert" code points: check every one of them is NFC
 * alone, has combining class 0 and is never a non-first part of a canonical decomposition
 * (so it cannot compose with what precedes it). */
static void test_nfc_inert_ranges(void) {
    static uint8_t second[0x110000];
    memset(second, 0, sizeof second);
    for (int32_t cp = 0; cp < 0x110000; cp++) {
        utf8proc_int32_t d[32];
        int last = 0;
        utf8proc_ssize_t n = utf8proc_decompose_char(cp, d, 32, UTF8PROC_DECOMPOSE, &last);
        for (utf8proc_ssize_t k = 1; k < n && k < 32; k++) second[d[k]] = 1;
    }
    int bad = 0;
    for (int32_t cp = 0; cp < 0x110000; cp++) {
        if (!tok_nfc_inert((uint32_t)cp) || (cp >= 0xD800 && cp <= 0xDFFF)) continue;
        const utf8proc_property_t *p = utf8proc_get_property(cp);
        utf8proc_uint8_t in[8], *out = NULL;
        utf8proc_ssize_t l = utf8proc_encode_char(cp, in);
        utf8proc_ssize_t ol = utf8proc_map(in, l, &out, UTF8PROC_STABLE | UTF8PROC_COMPOSE);
        int ok = p->combining_class == 0 && !second[cp] && ol == l && !memcmp(in, out, (size_t)l);
        free(out);
        if (!ok && bad++ < 10) fprintf(stderr, "  U+%04X is not NFC-inert\n", (unsigned)cp);
    }
    CHECK(bad == 0, "%d code points wrongly treated as NFC-inert", bad);
    /* And the fast path really is taken for plain text, while NFC applies to the rest. */
    char *out = NULL;
    size_t ol = 0;
    tkr_error e;
    CHECK(tok_nfc("caf\xc3\xa9 \xe2\x80\x94 \xe4\xb8\xad", 11, &out, &ol, &e) == TKR_OK && !out,
          "inert text not copied");
    CHECK(tok_nfc("e\xcc\x81", 3, &out, &ol, &e) == TKR_OK && out && ol == 2 &&
              !memcmp(out, "\xc3\xa9", 2), "e + combining acute -> U+00E9");
    free(out);
}

/* ---- added-token flags ------------------------------------------------------------------------ */

/* A tokenizer.json whose added tokens exercise lstrip/rstrip/single_word/normalized, compared
 * with ids HF tokenizers 0.22 gives for the same file. */
static void test_added_token_flags(void) {
    json_t *root = build_tokenizer_json(1);
    CHECK(root != NULL, "building tokenizer.json");
    if (!root) return;
    json_t *added = json_object_get(root, "added_tokens");
    json_array_append_new(added, json_pack("{s:i,s:s,s:b,s:b,s:b,s:b,s:b}", "id", 151657,
                                           "content", "<L>", "single_word", 0, "lstrip", 1,
                                           "rstrip", 0, "normalized", 0, "special", 1));
    json_array_append_new(added, json_pack("{s:i,s:s,s:b,s:b,s:b,s:b,s:b}", "id", 151658,
                                           "content", "<R>", "single_word", 0, "lstrip", 0,
                                           "rstrip", 1, "normalized", 0, "special", 1));
    json_array_append_new(added, json_pack("{s:i,s:s,s:b,s:b,s:b,s:b,s:b}", "id", 151659,
                                           "content", "qqx", "single_word", 1, "lstrip", 0,
                                           "rstrip", 0, "normalized", 0, "special", 0));
    json_array_append_new(added, json_pack("{s:i,s:s,s:b,s:b,s:b,s:b,s:b}", "id", 151660,
                                           "content", "caf\xc3\xa9!", "single_word", 0, "lstrip",
                                           0, "rstrip", 0, "normalized", 1, "special", 0));
    tmpdir t;
    tmpdir_make(&t);
    CHECK(dump_tokenizer_json(root, &t), "write");
    json_decref(root);
    tkr_tokenizer *tok = load_or_fail(t.dir);
    if (tok) {
        /* Expected ids: HF tokenizers 0.22.2 on this same tokenizer.json. */
        static const struct {
            const char *text;
            int32_t ids[4];
            size_t n;
        } cases[] = {
            {"a  <L>b", {64, 151657, 65}, 3},            /* lstrip eats both spaces */
            {" <L>", {151657}, 1},
            {"a\xe3\x80\x80<L>", {64, 151657}, 2},       /* U+3000 is whitespace too */
            {"<L><L>", {151657, 151657}, 2},
            {"a<R>  b", {64, 151658, 65}, 3},            /* rstrip eats both spaces */
            {"a qqx b", {64, 220, 151659, 293}, 4},      /* single_word: a word on its own */
            {"qqx.", {151659, 13}, 2},
            {"aqqxb", {64, 27579, 7929}, 3},             /* inside a word: not matched */
            {"cafe\xcc\x81!", {151660}, 1},              /* normalized: matched after NFC */
            {"xcaf\xc3\xa9!y", {87, 151660, 88}, 3},
        };
        for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
            CHECK(check_ids(tok, cases[i].text, strlen(cases[i].text), cases[i].ids, cases[i].n,
                            "added flags"), "case %zu", i);
    }
    tkr_tokenizer_free(tok);
    tmpdir_remove(&t);
}

/* split_special_tokens=true in tokenizer_config.json: special tokens are ordinary text, so
 * the ids equal those of a tokenizer.json without any added tokens. */
static void test_split_special_tokens(void) {
    json_t *root = build_tokenizer_json(0);
    CHECK(root != NULL, "building tokenizer.json");
    if (!root) return;
    tmpdir plain, split;
    tmpdir_make(&plain);
    tmpdir_make(&split);
    CHECK(dump_tokenizer_json(root, &split), "write");
    json_object_set_new(root, "added_tokens", json_array());
    CHECK(dump_tokenizer_json(root, &plain), "write");
    json_decref(root);
    char p[512];
    tmpdir_path(&split, "tokenizer_config.json", p, sizeof p);
    CHECK(write_file(p, "{\"split_special_tokens\": true}"), "write config");
    tkr_tokenizer *a = load_or_fail(plain.dir), *b = load_or_fail(split.dir);
    const char *text = "a<|im_end|>\n<|im_start|>b";
    int32_t *ia = NULL;
    size_t na = 0;
    tkr_error e;
    if (a && b && tkr_tokenize(a, text, strlen(text), &ia, &na, &e) == TKR_OK) {
        CHECK(na > 6, "special tokens spelled out: %zu ids", na);
        CHECK(check_ids(b, text, strlen(text), ia, na, "split_special"), "split_special_tokens");
        CHECK(tkr_tokenizer_token_id(b, "<|im_end|>") == 151645, "still a known token");
    }
    free(ia);
    tkr_tokenizer_free(a);
    tkr_tokenizer_free(b);
    tmpdir_remove(&plain);
    tmpdir_remove(&split);
}

/* ---- load errors ------------------------------------------------------------------------------ */

static tkr_status load_expect(const char *dir, tkr_status want, const char *needle,
                              const tkr_tokenizer_limits *lim) {
    tkr_tokenizer *tok = NULL;
    tkr_error e = {TKR_OK, ""};
    tkr_status st = tkr_tokenizer_load_ex(dir, lim, &tok, &e);
    CHECK(st == want, "status %s, want %s (%s)", tkr_status_name(st), tkr_status_name(want), e.message);
    CHECK(st == TKR_OK || strstr(e.message, needle), "message '%s' lacks '%s'", e.message, needle);
    CHECK(st == TKR_OK || tok == NULL, "no tokenizer on failure");
    tkr_tokenizer_free(tok);
    return st;
}

static void write_in(const tmpdir *t, const char *name, const char *text) {
    char p[512];
    tmpdir_path(t, name, p, sizeof p);
    CHECK(write_file(p, text), "writing %s", p);
}

/* A tiny byte-level vocabulary: all 256 byte tokens plus "ab" and "abc" (ids 256, 257). */
static char *tiny_vocab(int extra_dup_id) {
    json_t *v = json_object();
    for (int b = 0; b < 256; b++) {
        uint32_t cp = tok_byte_to_cp((uint8_t)b);
        utf8proc_uint8_t s[8];
        utf8proc_ssize_t l = utf8proc_encode_char((utf8proc_int32_t)cp, s);
        s[l] = 0;
        json_object_set_new(v, (const char *)s, json_integer(b));
    }
    json_object_set_new(v, "ab", json_integer(256));
    json_object_set_new(v, "abc", json_integer(extra_dup_id ? 256 : 257));
    char *s = json_dumps(v, JSON_COMPACT);
    json_decref(v);
    return s;
}

static void test_load_errors(void) {
    tmpdir t;
    tmpdir_make(&t);
    /* Nothing there. */
    load_expect(t.dir, TKR_ERR_IO, "no tokenizer found", NULL);
    load_expect("/nonexistent/dir", TKR_ERR_IO, "no tokenizer found", NULL);
    /* A tiny valid slow layout loads and merges. */
    char *v = tiny_vocab(0);
    write_in(&t, "vocab.json", v);
    free(v);
    write_in(&t, "merges.txt", "#version: 0.2\na b\nab c\n");
    if (load_expect(t.dir, TKR_OK, "", NULL) == TKR_OK) {
        tkr_tokenizer *tok = NULL;
        tkr_error e;
        tkr_tokenizer_load(t.dir, &tok, &e);
        const int32_t want[] = {257, 32, 256, 100}; /* abc, " ", ab, d (ids = byte values) */
        CHECK(check_ids(tok, "abc abd", 7, want, 4, "tiny"), "tiny merges");
        CHECK(tkr_tokenizer_vocab_size(tok) == 258, "tiny size");
        tkr_tokenizer_free(tok);
    }
    /* Bad merges. */
    write_in(&t, "merges.txt", "#version: 0.2\na b\nab q9\n");
    load_expect(t.dir, TKR_ERR_FORMAT, "merges.txt: line 3: 'q9' is not in the vocabulary", NULL);
    write_in(&t, "merges.txt", "a c\n");
    load_expect(t.dir, TKR_ERR_FORMAT, "('ac') is not in the vocabulary", NULL);
    write_in(&t, "merges.txt", "a b c\n");
    load_expect(t.dir, TKR_ERR_FORMAT, "line 1 is not 'a b'", NULL);
    write_in(&t, "merges.txt", "a b\r\n\r\nab c\r\n");  /* CRLF and blank lines are fine */
    load_expect(t.dir, TKR_OK, "", NULL);
    /* Duplicate ids, bad JSON, wrong types. */
    v = tiny_vocab(1);
    write_in(&t, "vocab.json", v);
    free(v);
    load_expect(t.dir, TKR_ERR_FORMAT, "id 256 is given to two tokens", NULL);
    write_in(&t, "vocab.json", "{\"a\": 0, \"b\": 1");
    load_expect(t.dir, TKR_ERR_FORMAT, "vocab.json: invalid JSON at line 1", NULL);
    write_in(&t, "vocab.json", "{\"a\": 0, \"a\": 1}");
    load_expect(t.dir, TKR_ERR_FORMAT, "vocab.json: invalid JSON", NULL);
    write_in(&t, "vocab.json", "{\"a\": \"zero\"}");
    load_expect(t.dir, TKR_ERR_FORMAT, "not an integer", NULL);
    write_in(&t, "vocab.json", "{\"a\": -4}");
    load_expect(t.dir, TKR_ERR_FORMAT, "outside [0,", NULL);
    write_in(&t, "vocab.json", "{\"a\": 0, \"b\": 1}");
    load_expect(t.dir, TKR_ERR_FORMAT, "no token for byte 0x00", NULL);
    /* Added tokens that clash. */
    v = tiny_vocab(0);
    write_in(&t, "vocab.json", v);
    free(v);
    write_in(&t, "merges.txt", "a b\nab c\n");
    write_in(&t, "added_tokens.json", "{\"<x>\": 256}");
    load_expect(t.dir, TKR_ERR_FORMAT, "reuses id 256", NULL);
    write_in(&t, "added_tokens.json", "{\"ab\": 300}");
    load_expect(t.dir, TKR_ERR_FORMAT, "the vocabulary gives it id 256", NULL);
    write_in(&t, "added_tokens.json", "{\"<x>\": 300}");
    load_expect(t.dir, TKR_OK, "", NULL);
    write_in(&t, "tokenizer_config.json",
             "{\"added_tokens_decoder\": {\"258\": {\"content\": \"<y>\", \"special\": true}},"
             " \"tokenizer_class\": \"Qwen2Tokenizer\"}");
    load_expect(t.dir, TKR_OK, "", NULL); /* the config wins over added_tokens.json */
    write_in(&t, "tokenizer_config.json", "{\"tokenizer_class\": \"GPT2Tokenizer\"}");
    load_expect(t.dir, TKR_ERR_UNSUPPORTED, "tokenizer_class GPT2Tokenizer", NULL);
    write_in(&t, "tokenizer_config.json", "[1]");
    load_expect(t.dir, TKR_ERR_FORMAT, "tokenizer_config.json: not a JSON object", NULL);
    char p[512];
    tmpdir_path(&t, "tokenizer_config.json", p, sizeof p);
    unlink(p);
    /* Size caps. */
    tkr_tokenizer_limits lim = tkr_tokenizer_default_limits();
    lim.max_file_bytes = 1000;
    load_expect(t.dir, TKR_ERR_LIMIT, "file too large", &lim);
    lim = tkr_tokenizer_default_limits();
    lim.max_ids = 200;
    load_expect(t.dir, TKR_ERR_LIMIT, "over the limit of 200", &lim);
    /* tokenizer.json: another model type, normalizer or pre-tokenizer is refused clearly. */
    write_in(&t, "tokenizer.json", "{\"model\": {\"type\": \"WordPiece\", \"vocab\": {}}}");
    load_expect(t.dir, TKR_ERR_UNSUPPORTED, "model type WordPiece is not supported", NULL);
    json_t *root = build_tokenizer_json(0);
    json_object_set_new(root, "normalizer", json_pack("{s:s}", "type", "NFKC"));
    CHECK(dump_tokenizer_json(root, &t), "write");
    load_expect(t.dir, TKR_ERR_UNSUPPORTED, "normalizer NFKC", NULL);
    json_object_set_new(root, "normalizer", json_null());
    json_object_set_new(root, "pre_tokenizer", json_pack("{s:s,s:b}", "type", "ByteLevel",
                                                         "add_prefix_space", 0));
    CHECK(dump_tokenizer_json(root, &t), "write");
    load_expect(t.dir, TKR_ERR_UNSUPPORTED, "pre_tokenizer (ByteLevel) is not the Qwen2 one", NULL);
    json_decref(root);
    write_in(&t, "tokenizer.json", "{\"model\": ");
    load_expect(t.dir, TKR_ERR_FORMAT, "tokenizer.json: invalid JSON", NULL);
    tmpdir_remove(&t);
}

int main(void) {
    RUN(test_llama_vectors_qwen2);
    RUN(test_llama_vectors_deepseek_r1_qwen);
    RUN(test_ops_mm_prompt);
    RUN(test_added_token_ids);
    RUN(test_hf_reference);
    RUN(test_tokenizer_json_string_merges);
    RUN(test_tokenizer_json_pair_merges);
    RUN(test_pretokenizer_splits);
    RUN(test_invalid_utf8);
    RUN(test_roundtrip_and_nul);
    RUN(test_long_words);
    RUN(test_append_builds_prompt);
    RUN(test_threads);
    RUN(test_nfc_inert_ranges);
    RUN(test_added_token_flags);
    RUN(test_split_special_tokens);
    RUN(test_load_errors);
    return test_summary();
}
