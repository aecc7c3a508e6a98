/* tok_load.c - loading a Hugging Face tokenizer directory into a tkr_tokenizer.
 *
 * Two layouts, as transformers reads them:
 *   tokenizer.json                 model.vocab, model.merges ("a b" strings or ["a","b"] pairs),
 *                                  added_tokens[], normalizer, pre_tokenizer; plus
 *                                  split_special_tokens from tokenizer_config.json if present.
 *   vocab.json + merges.txt        merges.txt's first line "#version..." is skipped; added tokens
 *                                  come from tokenizer_config.json "added_tokens_decoder", or,
 *                                  when the config has none, from added_tokens.json (transformers'
 *                                  legacy rule: the config wins, the two are never merged).
 * Only the Qwen2 recipe is accepted: a BPE model, no or NFC normalizer, and the Qwen2 Split
 * regex followed by ByteLevel(add_prefix_space=false, use_regex=false). Anything else fails with
 * TKR_ERR_UNSUPPORTED naming what was found, rather than tokenizing differently from HF.
 *
 * Validation: every file is size-capped; ids must be in [0, max_ids) and unique (an added token
 * that is also a vocabulary entry must carry that entry's id); merges must name vocabulary
 * tokens whose concatenation is a vocabulary token; all 256 single-byte tokens must exist. */
#include "tokenizer/tok_internal.h"
#include "util/error.h"
#include "util/platform.h"

#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* The exact pattern string of Qwen2's Split pre-tokenizer in tokenizer.json. */
static const char qwen2_pattern[] =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*"
    "|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

tkr_tokenizer_limits tkr_tokenizer_default_limits(void) {
    tkr_tokenizer_limits l;
    l.max_file_bytes = (size_t)64 << 20;
    l.max_ids = 1 << 24;
    l.max_token_bytes = 4096;
    l.max_added = 8192;
    return l;
}

/* ---- GPT-2 bytes_to_unicode ------------------------------------------------------------------ */

/* Printable bytes ! .. ~, ¡ .. ¬, ® .. ÿ stand for themselves; the 68 others (0x00-0x20,
 * 0x7F-0xA0, 0xAD) map to U+0100 .. U+0143 in byte order. */
uint32_t tok_byte_to_cp(uint8_t b) {
    if (b <= 0x20) return 256u + b;
    if (b >= 0x7F && b <= 0xA0) return 289u + (b - 0x7Fu);
    if (b == 0xAD) return 323u;
    return b;
}

int tok_cp_to_byte(uint32_t cp) {
    if ((cp >= 0x21 && cp <= 0x7E) || (cp >= 0xA1 && cp <= 0xAC) || (cp >= 0xAE && cp <= 0xFF))
        return (int)cp;
    if (cp >= 256 && cp <= 288) return (int)(cp - 256);
    if (cp >= 289 && cp <= 322) return (int)(cp - 289 + 0x7F);
    if (cp == 323) return 0xAD;
    return -1;
}

/* Undoes the byte-level alphabet of a file-form token (valid UTF-8) into out (cap bytes).
 * Returns the byte count, -1 if a character is outside the alphabet, -2 if it does not fit. */
static long decode_byte_level(const char *s, size_t len, char *out, size_t cap) {
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0, n = 0;
    while (i < len) {
        uint32_t cp;
        i += tok_utf8_decode(u + i, len - i, &cp);
        int b = tok_cp_to_byte(cp);
        if (b < 0) return -1;
        if (n >= cap) return -2;
        out[n++] = (char)b;
    }
    return (long)n;
}

/* ---- the builder ----------------------------------------------------------------------------- */


static tkr_status arena_append(tok_builder *b, const char *bytes, size_t n, uint32_t *off,
                               tkr_error *err) {
    tkr_tokenizer *tok = b->tok;
    if (tok->arena_len + n > b->arena_cap) {
        size_t ncap = b->arena_cap ? b->arena_cap : 1 << 16;
        while (ncap < tok->arena_len + n) ncap *= 2;
        if (ncap > UINT32_MAX) return tkr_fail(err, TKR_ERR_LIMIT, "vocabulary text over 4 GiB");
        char *p = realloc(tok->arena, ncap);
        if (!p) return tkr_fail(err, TKR_ERR_NOMEM, "out of memory for the vocabulary");
        tok->arena = p;
        b->arena_cap = ncap;
    }
    memcpy(tok->arena + tok->arena_len, bytes, n);
    *off = (uint32_t)tok->arena_len;
    tok->arena_len += n;
    return TKR_OK;
}

/* Undoes JSON_DECODE_INT_AS_REAL for values that are whole numbers within the int64 range
 * (depth-capped: jansson itself limits nesting to 2048). */
static void restore_integers(json_t *v, int depth) {
    if (depth > 4096) return;
    if (json_is_object(v)) {
        const char *k;
        json_t *c;
        void *tmp;
        json_object_foreach_safe(v, tmp, k, c) {
            double d = json_is_real(c) ? json_real_value(c) : 0.5;
            if (json_is_real(c) && fabs(d) < 9.0e18 && d == (double)(json_int_t)d)
                json_object_set_new(v, k, json_integer((json_int_t)d));
            else
                restore_integers(c, depth + 1);
        }
    } else if (json_is_array(v)) {
        for (size_t i = 0; i < json_array_size(v); i++) {
            json_t *c = json_array_get(v, i);
            double d = json_is_real(c) ? json_real_value(c) : 0.5;
            if (json_is_real(c) && fabs(d) < 9.0e18 && d == (double)(json_int_t)d)
                json_array_set_new(v, i, json_integer((json_int_t)d));
            else
                restore_integers(c, depth + 1);
        }
    }
}

/* ---- where the files come from ---------------------------------------------------------------- */

/* The five files of a tokenizer directory, as indices into tok_src. */
enum { TF_JSON, TF_VOCAB, TF_MERGES, TF_CONFIG, TF_ADDED, TF_N };
static const char *const tf_names[TF_N] = {"tokenizer.json", "vocab.json", "merges.txt",
                                           "tokenizer_config.json", "added_tokens.json"};

/* The loader reads its files through this, so that a directory (tkr_tokenizer_load_ex) and
 * buffers in memory (tkr_tokenizer_load_memory, the fuzzers) run the same parsing code. Files
 * are read lazily, in the order and only when the rules need them. */
typedef struct {
    const char *data[TF_N];   /* memory: the bytes ([len]), NULL = absent; unused for a dir */
    size_t len[TF_N];
    int in_memory;
    char path[TF_N][4096];    /* the file paths (memory: label/name), for opening and messages */
} tok_src;

static int src_exists(const tok_src *s, int f) {
    return s->in_memory ? s->data[f] != NULL : tkr_file_exists(s->path[f]);
}

/* File f, at most cap bytes: *data points at its bytes ([*len]); *owned is what the caller frees
 * (the read buffer; NULL for borrowed memory). */
static tkr_status src_read(const tok_src *s, int f, size_t cap, const char **data, size_t *len,
                           char **owned, tkr_error *err) {
    *owned = NULL;
    if (!s->in_memory) {
        tkr_status st = tkr_read_file(s->path[f], cap, owned, len, err);
        *data = *owned;
        return st;
    }
    if (!s->data[f]) return tkr_fail(err, TKR_ERR_IO, "%s: not given", s->path[f]);
    if (cap && s->len[f] > cap)
        return tkr_fail(err, TKR_ERR_LIMIT, "%s: file too large (%zu bytes)", s->path[f], s->len[f]);
    *data = s->data[f];
    *len = s->len[f];
    return TKR_OK;
}

/* Reads a whole JSON file (size-capped). Parse errors name the file, line and column. */
static tkr_status load_json(const tok_src *src, int f, size_t cap, json_t **out, tkr_error *err) {
    const char *path = src->path[f];
    const char *buf = NULL;
    char *owned = NULL;
    size_t len = 0;
    *out = NULL;
    tkr_status st = src_read(src, f, cap, &buf, &len, &owned, err);
    if (st != TKR_OK) return st;
    json_error_t je;
    json_t *root = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &je);
    if (!root && json_error_code(&je) == json_error_numeric_overflow) {
        /* HF writes model_max_length = 1e30 as an integer literal when none is set: read
         * integers as reals, then turn the ones that fit back into integers */
        root = json_loadb(buf, len, JSON_REJECT_DUPLICATES | JSON_DECODE_INT_AS_REAL, &je);
        if (root) restore_integers(root, 0);
    }
    free(owned);
    if (!root)
        return tkr_fail(err, TKR_ERR_FORMAT, "%s: invalid JSON at line %d, column %d: %s", path,
                        je.line, je.column, je.text);
    *out = root;
    return TKR_OK;
}

/* Grows the id-indexed arrays of the tokenizer to n_ids entries (new entries empty). */
tkr_status tok_grow_ids(tkr_tokenizer *tok, int32_t n_ids, tkr_error *err) {
    if (n_ids <= tok->n_ids && tok->tok_off) return TKR_OK;
    size_t n = (size_t)n_ids;
    uint32_t *off = realloc(tok->tok_off, (n ? n : 1) * sizeof *off);
    if (off) tok->tok_off = off;
    uint32_t *len = realloc(tok->tok_len, (n ? n : 1) * sizeof *len);
    if (len) tok->tok_len = len;
    int32_t *ab = realloc(tok->added_by_id, (n ? n : 1) * sizeof *ab);
    if (ab) tok->added_by_id = ab;
    if (!off || !len || !ab) return tkr_fail(err, TKR_ERR_NOMEM, "out of memory for %d ids", n_ids);
    for (size_t i = (size_t)tok->n_ids; i < n; i++) {
        tok->tok_off[i] = UINT32_MAX;
        tok->tok_len[i] = 0;
        tok->added_by_id[i] = -1;
    }
    tok->n_ids = n_ids;
    return TKR_OK;
}

/* Reads n vocabulary entries (file form, id) given by get and builds the byte-string map and the
 * single-byte table. Shared by tokenizer.json / vocab.json and GGUF metadata. */
tkr_status tok_read_vocab_entries(tok_builder *b, size_t n, tok_entry_fn get, void *ctx,
                                  const char *what, tkr_error *err) {
    tkr_tokenizer *tok = b->tok;
    if (n == 0) return tkr_fail(err, TKR_ERR_FORMAT, "%s: empty vocabulary", what);
    if (n > (size_t)b->lim.max_ids)
        return tkr_fail(err, TKR_ERR_LIMIT, "%s: %zu entries, over the limit of %d", what, n,
                        b->lim.max_ids);
    b->v_id = malloc(n * sizeof *b->v_id);
    b->v_off = malloc(n * sizeof *b->v_off);
    b->v_len = malloc(n * sizeof *b->v_len);
    if (!b->v_id || !b->v_off || !b->v_len)
        return tkr_fail(err, TKR_ERR_NOMEM, "%s: out of memory", what);
    int32_t max_id = -1;
    for (size_t e = 0; e < n; e++) {
        const char *key;
        size_t klen;
        int64_t id;
        tkr_status gst = get(ctx, e, &key, &klen, &id, err);
        if (gst != TKR_OK) return gst;
        if (id < 0 || id >= b->lim.max_ids)
            return tkr_fail(err, TKR_ERR_FORMAT, "%s: token '%.64s' has id %lld, outside [0, %d)",
                            what, key, (long long)id, b->lim.max_ids);
        if (klen == 0 || klen > b->lim.max_token_bytes || memchr(key, 0, klen))
            return tkr_fail(err, TKR_ERR_FORMAT,
                            "%s: token with id %lld has length %zu (1..%zu) or contains NUL",
                            what, (long long)id, klen, b->lim.max_token_bytes);
        long rl = decode_byte_level(key, klen, b->tmp, b->lim.max_token_bytes);
        size_t k = b->v_n++;
        b->v_id[k] = (int32_t)id;
        if (rl < 0) { /* not in the byte-level alphabet: BPE never produces it */
            char **os = realloc(tok->odd_str, (size_t)(tok->n_odd + 1) * sizeof *os);
            if (os) tok->odd_str = os;
            int32_t *oi = realloc(tok->odd_id, (size_t)(tok->n_odd + 1) * sizeof *oi);
            if (oi) tok->odd_id = oi;
            char *copy = os && oi ? malloc(klen + 1) : NULL;
            if (!copy) return tkr_fail(err, TKR_ERR_NOMEM, "%s: out of memory", what);
            memcpy(copy, key, klen);
            copy[klen] = 0;
            tok->odd_str[tok->n_odd] = copy;
            tok->odd_id[tok->n_odd++] = (int32_t)id;
            b->v_off[k] = UINT32_MAX;
            b->v_len[k] = 0;
        } else {
            tkr_status st = arena_append(b, b->tmp, (size_t)rl, &b->v_off[k], err);
            if (st != TKR_OK) return st;
            b->v_len[k] = (uint32_t)rl;
        }
        if (id > max_id) max_id = (int32_t)id;
    }
    tkr_status st = tok_grow_ids(tok, max_id + 1, err);
    if (st != TKR_OK) return st;
    if (tok_strmap_init(&tok->vocab, n) != TKR_OK)
        return tkr_fail(err, TKR_ERR_NOMEM, "%s: out of memory", what);
    /* Ids seen: a byte-level entry sets tok_off; an odd entry is marked with tok_len = 1. */
    for (size_t k = 0; k < b->v_n; k++) {
        int32_t id = b->v_id[k];
        if (tok->tok_off[id] != UINT32_MAX || tok->tok_len[id] == UINT32_MAX)
            return tkr_fail(err, TKR_ERR_FORMAT, "%s: id %d is given to two tokens", what, id);
        if (b->v_off[k] == UINT32_MAX) {
            tok->tok_len[id] = UINT32_MAX;
            continue;
        }
        tok->tok_off[id] = b->v_off[k];
        tok->tok_len[id] = b->v_len[k];
        if (tok_strmap_insert(tok, id) >= 0)
            return tkr_fail(err, TKR_ERR_FORMAT, "%s: two tokens stand for the same bytes (id %d)",
                            what, id);
    }
    for (int32_t id = 0; id < tok->n_ids; id++) /* odd entries: back to "no bytes" */
        if (tok->tok_len[id] == UINT32_MAX) tok->tok_len[id] = 0;
    tok->n_vocab = (int32_t)n;
    for (int c = 0; c < 256; c++) {
        char byte = (char)c;
        tok->byte_id[c] = tok_strmap_find(tok, &byte, 1);
        if (tok->byte_id[c] < 0)
            return tkr_fail(err, TKR_ERR_FORMAT,
                            "%s: no token for byte 0x%02X (a byte-level BPE needs all 256)", what, c);
    }
    return TKR_OK;
}

/* A JSON vocabulary object {"token": id, ...} as an entry list for tok_read_vocab_entries. */
typedef struct {
    const char **keys;
    json_t **vals;
    const char *what;
} json_vocab;

static tkr_status json_vocab_get(void *ctx, size_t k, const char **s, size_t *len, int64_t *id,
                                 tkr_error *err) {
    json_vocab *jv = ctx;
    *s = jv->keys[k];
    *len = strlen(*s);
    if (!json_is_integer(jv->vals[k]))
        return tkr_fail(err, TKR_ERR_FORMAT, "%s: the id of token '%.64s' is not an integer",
                        jv->what, *s);
    *id = json_integer_value(jv->vals[k]);
    return TKR_OK;
}

/* Reads a vocabulary object (vocab.json, tokenizer.json model.vocab). */
static tkr_status read_vocab(tok_builder *b, json_t *vocab, const char *what, tkr_error *err) {
    if (!json_is_object(vocab)) return tkr_fail(err, TKR_ERR_FORMAT, "%s: not a JSON object", what);
    size_t n = json_object_size(vocab);
    json_vocab jv = {malloc((n ? n : 1) * sizeof(char *)), malloc((n ? n : 1) * sizeof(json_t *)),
                     what};
    if (!jv.keys || !jv.vals) {
        free(jv.keys);
        free(jv.vals);
        return tkr_fail(err, TKR_ERR_NOMEM, "%s: out of memory", what);
    }
    size_t i = 0;
    const char *key;
    json_t *val;
    json_object_foreach(vocab, key, val) {
        jv.keys[i] = key;
        jv.vals[i++] = val;
    }
    tkr_status st = tok_read_vocab_entries(b, n, json_vocab_get, &jv, what, err);
    free(jv.keys);
    free(jv.vals);
    return st;
}

/* Adds merge number rank, "a" + "b" (file form). where names it in errors. */
tkr_status tok_add_merge(tok_builder *b, const char *a, size_t alen, const char *bb, size_t blen,
                            size_t rank, const char *where, tkr_error *err) {
    tkr_tokenizer *tok = b->tok;
    size_t cap = b->lim.max_token_bytes;
    long la = decode_byte_level(a, alen, b->tmp, cap);
    long lb = la >= 0 ? decode_byte_level(bb, blen, b->tmp + la, cap) : -1;
    if (la <= 0 || lb <= 0)
        return tkr_fail(err, TKR_ERR_FORMAT, "%s: '%.*s %.*s' is not a pair of byte-level tokens",
                        where, (int)(alen > 64 ? 64 : alen), a, (int)(blen > 64 ? 64 : blen), bb);
    int32_t ia = tok_strmap_find(tok, b->tmp, (size_t)la);
    int32_t ib = tok_strmap_find(tok, b->tmp + la, (size_t)lb);
    int32_t im = tok_strmap_find(tok, b->tmp, (size_t)(la + lb));
    int sa = (int)(alen > 64 ? 64 : alen), sb = (int)(blen > 64 ? 64 : blen);
    if (ia < 0 || ib < 0)
        return tkr_fail(err, TKR_ERR_FORMAT, "%s: '%.*s' is not in the vocabulary", where,
                        ia < 0 ? sa : sb, ia < 0 ? a : bb);
    if (im < 0)
        return tkr_fail(err, TKR_ERR_FORMAT,
                        "%s: the merge of '%.*s' and '%.*s' ('%.*s%.*s') is not in the vocabulary",
                        where, sa, a, sb, bb, sa, a, sb, bb);
    if (rank > UINT32_MAX - 1) return tkr_fail(err, TKR_ERR_LIMIT, "%s: too many merges", where);
    tok_mergemap_add(&tok->merges, ia, ib, (uint32_t)rank, im);
    return TKR_OK;
}

/* Splits "a b" (exactly one space, both halves non-empty) into its halves. */
static int split_merge_line(const char *s, size_t len, size_t *alen, const char **bp, size_t *blen) {
    const char *sp = memchr(s, ' ', len);
    if (!sp || sp == s || sp == s + len - 1 || memchr(sp + 1, ' ', (size_t)(s + len - sp - 1)))
        return 0;
    *alen = (size_t)(sp - s);
    *bp = sp + 1;
    *blen = len - *alen - 1;
    return 1;
}

/* merges.txt: one "a b" per line; the first line "#version..." and empty lines are skipped;
 * a trailing CR is tolerated. */
static tkr_status read_merges_txt(tok_builder *b, const tok_src *src, tkr_error *err) {
    const char *path = src->path[TF_MERGES];
    const char *buf = NULL;
    char *owned = NULL;
    size_t len = 0;
    tkr_status st = src_read(src, TF_MERGES, b->lim.max_file_bytes, &buf, &len, &owned, err);
    if (st != TKR_OK) return st;
    size_t lines = 1;
    for (size_t i = 0; i < len; i++) lines += buf[i] == '\n';
    st = tok_mergemap_init(&b->tok->merges, lines);
    if (st != TKR_OK) {
        free(owned);
        return tkr_fail(err, st, "%s: out of memory", path);
    }
    size_t pos = 0, line_no = 0, rank = 0;
    while (pos < len && st == TKR_OK) {
        const char *line = buf + pos;
        const char *nl = memchr(line, '\n', len - pos);
        size_t ll = nl ? (size_t)(nl - line) : len - pos;
        pos += ll + (nl ? 1 : 0);
        line_no++;
        if (ll && line[ll - 1] == '\r') ll--;
        if (ll == 0 || (line_no == 1 && ll >= 8 && memcmp(line, "#version", 8) == 0)) continue;
        size_t alen, blen;
        const char *bp;
        char where[96];
        snprintf(where, sizeof where, "line %zu", line_no);
        if (!split_merge_line(line, ll, &alen, &bp, &blen))
            st = tkr_fail(err, TKR_ERR_FORMAT, "%s: line %zu is not 'a b'", path, line_no);
        else if ((st = tok_add_merge(b, line, alen, bp, blen, rank++, where, err)) != TKR_OK)
            tkr_error_prefix(err, "%s: ", path);
    }
    free(owned);
    return st;
}

/* tokenizer.json model.merges: ["a b", ...] or [["a", "b"], ...]. */
static tkr_status read_merges_json(tok_builder *b, json_t *merges, const char *path, tkr_error *err) {
    if (!json_is_array(merges))
        return tkr_fail(err, TKR_ERR_FORMAT, "%s: model.merges is not an array", path);
    size_t n = json_array_size(merges);
    if (tok_mergemap_init(&b->tok->merges, n) != TKR_OK)
        return tkr_fail(err, TKR_ERR_NOMEM, "%s: out of memory", path);
    for (size_t i = 0; i < n; i++) {
        json_t *m = json_array_get(merges, i);
        const char *a, *bp;
        size_t alen, blen;
        if (json_is_string(m)) {
            a = json_string_value(m);
            if (!split_merge_line(a, json_string_length(m), &alen, &bp, &blen))
                return tkr_fail(err, TKR_ERR_FORMAT, "%s: model.merges[%zu] is not 'a b'", path, i);
        } else if (json_is_array(m) && json_array_size(m) == 2 &&
                   json_is_string(json_array_get(m, 0)) && json_is_string(json_array_get(m, 1))) {
            a = json_string_value(json_array_get(m, 0));
            alen = json_string_length(json_array_get(m, 0));
            bp = json_string_value(json_array_get(m, 1));
            blen = json_string_length(json_array_get(m, 1));
        } else {
            return tkr_fail(err, TKR_ERR_FORMAT,
                            "%s: model.merges[%zu] is neither \"a b\" nor [\"a\", \"b\"]", path, i);
        }
        char where[96];
        snprintf(where, sizeof where, "model.merges[%zu]", i);
        tkr_status st = tok_add_merge(b, a, alen, bp, blen, i, where, err);
        if (st != TKR_OK) {
            tkr_error_prefix(err, "%s: ", path);
            return st;
        }
    }
    return TKR_OK;
}

/* Adds one added token after the vocabulary is loaded. */
tkr_status tok_add_added(tok_builder *b, const char *content, size_t len, int64_t id, int special,
                            int lstrip, int rstrip, int single_word, int normalized,
                            const char *what, tkr_error *err) {
    tkr_tokenizer *tok = b->tok;
    if (len == 0 || len > b->lim.max_token_bytes)
        return tkr_fail(err, TKR_ERR_FORMAT, "%s: added token with id %lld has length %zu (1..%zu)",
                        what, (long long)id, len, b->lim.max_token_bytes);
    if (memchr(content, 0, len))
        return tkr_fail(err, TKR_ERR_FORMAT, "%s: added token with id %lld contains NUL", what,
                        (long long)id);
    if (id < 0 || id >= b->lim.max_ids)
        return tkr_fail(err, TKR_ERR_FORMAT, "%s: added token '%.64s' has id %lld, outside [0, %d)",
                        what, content, (long long)id, b->lim.max_ids);
    if (tok->n_added >= b->lim.max_added)
        return tkr_fail(err, TKR_ERR_LIMIT, "%s: more than %d added tokens", what, b->lim.max_added);
    /* The same content twice (tokenizer.json lists can repeat): the same id is fine. */
    for (int32_t k = 0; k < tok->n_added; k++)
        if (tok->added[k].len == len && !memcmp(tok->added[k].content, content, len)) {
            if (tok->added[k].id == (int32_t)id) return TKR_OK;
            return tkr_fail(err, TKR_ERR_FORMAT, "%s: added token '%.64s' has ids %d and %lld",
                            what, content, tok->added[k].id, (long long)id);
        }
    int32_t in_vocab = tkr_tokenizer_token_id(tok, content);
    if (in_vocab >= 0 && in_vocab != (int32_t)id)
        return tkr_fail(err, TKR_ERR_FORMAT,
                        "%s: added token '%.64s' has id %lld but the vocabulary gives it id %d", what,
                        content, (long long)id, in_vocab);
    if (in_vocab < 0 && id < tok->n_ids &&
        (tok->tok_off[id] != UINT32_MAX || tok->added_by_id[id] >= 0))
        return tkr_fail(err, TKR_ERR_FORMAT, "%s: added token '%.64s' reuses id %lld", what,
                        content, (long long)id);
    for (int32_t k = 0; k < tok->n_odd && in_vocab < 0; k++)
        if (tok->odd_id[k] == (int32_t)id)
            return tkr_fail(err, TKR_ERR_FORMAT, "%s: added token '%.64s' reuses id %lld", what,
                            content, (long long)id);
    tkr_status st = tok_grow_ids(tok, (int32_t)id + 1 > tok->n_ids ? (int32_t)id + 1 : tok->n_ids, err);
    if (st != TKR_OK) return st;
    tok_added *arr = realloc(tok->added, (size_t)(tok->n_added + 1) * sizeof *arr);
    if (!arr) return tkr_fail(err, TKR_ERR_NOMEM, "out of memory for added tokens");
    tok->added = arr;
    tok_added *a = &arr[tok->n_added];
    memset(a, 0, sizeof *a);
    a->id = (int32_t)id;
    a->special = (uint8_t)special;
    a->lstrip = (uint8_t)lstrip;
    a->rstrip = (uint8_t)rstrip;
    a->single_word = (uint8_t)single_word;
    a->normalized = (uint8_t)normalized;
    if (normalized && tok->nfc) { /* matched in NFC text, so the pattern is NFC'd too */
        char *nfc = NULL;
        size_t nlen = 0;
        st = tok_nfc(content, len, &nfc, &nlen, err);
        if (st != TKR_OK) return st;
        if (nfc) {
            a->content = nfc;
            a->len = nlen;
        }
    }
    if (!a->content) {
        a->content = malloc(len + 1);
        if (!a->content) return tkr_fail(err, TKR_ERR_NOMEM, "out of memory for added tokens");
        memcpy(a->content, content, len);
        a->content[len] = 0;
        a->len = len;
    }
    tok->added_by_id[id] = tok->n_added++;
    return TKR_OK;
}

/* A boolean member, or dflt when absent or null. */
static int get_bool(json_t *obj, const char *key, int dflt) {
    json_t *v = json_object_get(obj, key);
    return json_is_boolean(v) ? json_is_true(v) : dflt;
}

/* The string of a special-token attribute: "tok" or {"content": "tok", ...}. */
static const char *token_attr(json_t *v) {
    if (json_is_string(v)) return json_string_value(v);
    if (json_is_object(v) && json_is_string(json_object_get(v, "content")))
        return json_string_value(json_object_get(v, "content"));
    return NULL;
}

/* ---- tokenizer.json -------------------------------------------------------------------------- */

/* Checks normalizer and pre_tokenizer are the Qwen2 ones; sets tok->nfc. */
static tkr_status check_pipeline(tkr_tokenizer *tok, json_t *root, const char *path,
                                 tkr_error *err) {
    json_t *norm = json_object_get(root, "normalizer");
    const char *nt = json_string_value(json_object_get(norm, "type"));
    tok->nfc = 0;
    if (norm && !json_is_null(norm)) {
        if (nt && !strcmp(nt, "NFC")) {
            tok->nfc = 1;
        } else if (nt && !strcmp(nt, "Sequence")) {
            json_t *list = json_object_get(norm, "normalizers");
            size_t i;
            json_t *n;
            json_array_foreach(list, i, n) {
                const char *t = json_string_value(json_object_get(n, "type"));
                if (!t || strcmp(t, "NFC"))
                    return tkr_fail(err, TKR_ERR_UNSUPPORTED,
                                    "%s: normalizer %s is not supported (only NFC)", path,
                                    t ? t : "(untyped)");
                tok->nfc = 1;
            }
        } else {
            return tkr_fail(err, TKR_ERR_UNSUPPORTED,
                            "%s: normalizer %s is not supported (only NFC or none)", path,
                            nt ? nt : "(untyped)");
        }
    }
    json_t *pre = json_object_get(root, "pre_tokenizer");
    json_t *list = json_object_get(pre, "pretokenizers");
    const char *pt = json_string_value(json_object_get(pre, "type"));
    json_t *split = json_array_get(list, 0), *bl = json_array_get(list, 1);
    const char *pat = json_string_value(json_object_get(json_object_get(split, "pattern"), "Regex"));
    const char *st = json_string_value(json_object_get(split, "type"));
    const char *bt = json_string_value(json_object_get(bl, "type"));
    const char *beh = json_string_value(json_object_get(split, "behavior"));
    int ok = pt && !strcmp(pt, "Sequence") && json_array_size(list) == 2 && st &&
             !strcmp(st, "Split") && pat && !strcmp(pat, qwen2_pattern) && beh &&
             !strcmp(beh, "Isolated") && !get_bool(split, "invert", 0) && bt &&
             !strcmp(bt, "ByteLevel") && !get_bool(bl, "add_prefix_space", 0) &&
             !get_bool(bl, "use_regex", 1);
    if (!ok)
        return tkr_fail(err, TKR_ERR_UNSUPPORTED,
                        "%s: pre_tokenizer (%s) is not the Qwen2 one (Split with the Qwen2 regex, "
                        "Isolated, then ByteLevel without prefix space or regex)",
                        path, pt ? pt : "none");
    return TKR_OK;
}

static tkr_status load_tokenizer_json(tok_builder *b, const tok_src *src, tkr_error *err) {
    tkr_tokenizer *tok = b->tok;
    const char *path = src->path[TF_JSON];
    json_t *root = NULL;
    tkr_status st = load_json(src, TF_JSON, b->lim.max_file_bytes, &root, err);
    if (st != TKR_OK) return st;
    json_t *model = json_object_get(root, "model");
    const char *type = json_string_value(json_object_get(model, "type"));
    if (!json_is_object(model)) {
        st = tkr_fail(err, TKR_ERR_FORMAT, "%s: no \"model\" object", path);
    } else if (type ? strcmp(type, "BPE") != 0 : !json_object_get(model, "merges")) {
        st = tkr_fail(err, TKR_ERR_UNSUPPORTED, "%s: model type %s is not supported (only BPE)",
                      path, type ? type : "(none)");
    } else {
        json_t *drop = json_object_get(model, "dropout");
        const char *pfx = json_string_value(json_object_get(model, "continuing_subword_prefix"));
        const char *sfx = json_string_value(json_object_get(model, "end_of_word_suffix"));
        if (drop && !json_is_null(drop) && json_number_value(drop) != 0.0)
            st = tkr_fail(err, TKR_ERR_UNSUPPORTED, "%s: BPE dropout is not supported", path);
        else if ((pfx && *pfx) || (sfx && *sfx))
            st = tkr_fail(err, TKR_ERR_UNSUPPORTED,
                          "%s: BPE subword prefix/suffix is not supported", path);
        else
            st = check_pipeline(tok, root, path, err);
    }
    if (st == TKR_OK) {
        tok->ignore_merges = get_bool(model, "ignore_merges", 0);
        st = read_vocab(b, json_object_get(model, "vocab"), path, err);
        if (st == TKR_OK) {
            json_t *merges = json_object_get(model, "merges");
            st = read_merges_json(b, merges, path, err);
        }
    }
    json_t *added = json_object_get(root, "added_tokens");
    if (st == TKR_OK && added && !json_is_null(added) && !json_is_array(added))
        st = tkr_fail(err, TKR_ERR_FORMAT, "%s: added_tokens is not an array", path);
    size_t i;
    json_t *a;
    json_array_foreach(added, i, a) {
        if (st != TKR_OK) break;
        json_t *c = json_object_get(a, "content"), *id = json_object_get(a, "id");
        if (!json_is_string(c) || !json_is_integer(id)) {
            st = tkr_fail(err, TKR_ERR_FORMAT, "%s: added_tokens[%zu] lacks a content or id", path, i);
            break;
        }
        char what[64];
        snprintf(what, sizeof what, "added_tokens[%zu]", i);
        st = tok_add_added(b, json_string_value(c), json_string_length(c), json_integer_value(id),
                       get_bool(a, "special", 0), get_bool(a, "lstrip", 0), get_bool(a, "rstrip", 0),
                       get_bool(a, "single_word", 0), get_bool(a, "normalized", 1), what, err);
        if (st != TKR_OK) tkr_error_prefix(err, "%s: ", path);
    }
    json_decref(root);
    return st;
}

/* ---- vocab.json + merges.txt ----------------------------------------------------------------- */

/* Added tokens of the slow-tokenizer layout: tokenizer_config.json's added_tokens_decoder, or,
 * when absent, added_tokens.json with special = listed among the config's special tokens. */
static tkr_status load_slow_added(tok_builder *b, json_t *cfg, const tok_src *src,
                                  tkr_error *err) {
    const char *cfg_path = src->path[TF_CONFIG], *added_path = src->path[TF_ADDED];
    json_t *dec = json_object_get(cfg, "added_tokens_decoder");
    if (dec) {
        if (!json_is_object(dec))
            return tkr_fail(err, TKR_ERR_FORMAT, "%s: added_tokens_decoder is not an object",
                            cfg_path);
        const char *key;
        json_t *v;
        json_object_foreach(dec, key, v) {
            char *endp = NULL;
            long long id = strtoll(key, &endp, 10);
            json_t *c = json_object_get(v, "content");
            if (!*key || *endp || !json_is_string(c))
                return tkr_fail(err, TKR_ERR_FORMAT,
                                "%s: added_tokens_decoder entry '%.32s' needs a numeric id and a "
                                "content string", cfg_path, key);
            int special = get_bool(v, "special", 0);
            tkr_status st = tok_add_added(b, json_string_value(c), json_string_length(c), id, special,
                                      get_bool(v, "lstrip", 0), get_bool(v, "rstrip", 0),
                                      get_bool(v, "single_word", 0),
                                      get_bool(v, "normalized", !special), cfg_path, err);
            if (st != TKR_OK) return st;
        }
        return TKR_OK;
    }
    if (!src_exists(src, TF_ADDED)) return TKR_OK;
    json_t *root = NULL;
    tkr_status st = load_json(src, TF_ADDED, b->lim.max_file_bytes, &root, err);
    if (st != TKR_OK) return st;
    if (!json_is_object(root)) st = tkr_fail(err, TKR_ERR_FORMAT, "%s: not an object", added_path);
    static const char *const attrs[] = {"bos_token", "eos_token", "unk_token", "sep_token",
                                        "pad_token", "cls_token", "mask_token"};
    const char *key;
    json_t *v;
    json_object_foreach(root, key, v) {
        if (st != TKR_OK) break;
        if (!json_is_integer(v)) {
            st = tkr_fail(err, TKR_ERR_FORMAT, "%s: the id of '%.64s' is not an integer",
                          added_path, key);
            break;
        }
        int special = 0;
        for (size_t k = 0; k < sizeof attrs / sizeof *attrs; k++) {
            const char *s = token_attr(json_object_get(cfg, attrs[k]));
            if (s && !strcmp(s, key)) special = 1;
        }
        size_t i;
        json_t *t;
        json_array_foreach(json_object_get(cfg, "additional_special_tokens"), i, t) {
            const char *s = token_attr(t);
            if (s && !strcmp(s, key)) special = 1;
        }
        st = tok_add_added(b, key, strlen(key), json_integer_value(v), special, 0, 0, 0, !special,
                       added_path, err);
    }
    json_decref(root);
    return st;
}

static tkr_status load_slow(tok_builder *b, const tok_src *src, json_t *cfg, tkr_error *err) {
    const char *vocab_path = src->path[TF_VOCAB], *cfg_path = src->path[TF_CONFIG];
    const char *cls = json_string_value(json_object_get(cfg, "tokenizer_class"));
    if (cls && strncmp(cls, "Qwen2Tokenizer", 14) != 0)
        return tkr_fail(err, TKR_ERR_UNSUPPORTED,
                        "%s: tokenizer_class %s is not supported without a tokenizer.json "
                        "(only Qwen2Tokenizer)", cfg_path, cls);
    b->tok->nfc = 1; /* transformers' Qwen2 converter always uses NFC */
    json_t *vocab = NULL;
    tkr_status st = load_json(src, TF_VOCAB, b->lim.max_file_bytes, &vocab, err);
    if (st != TKR_OK) return st;
    st = read_vocab(b, vocab, vocab_path, err);
    json_decref(vocab);
    if (st == TKR_OK) st = read_merges_txt(b, src, err);
    if (st == TKR_OK) st = load_slow_added(b, cfg, src, err);
    return st;
}

/* ---- entry point ----------------------------------------------------------------------------- */

/* Sets the first-byte tables the matcher uses to skip text quickly. */
void tok_index_added(tkr_tokenizer *tok) {
    for (int32_t k = 0; k < tok->n_added; k++) {
        const tok_added *a = &tok->added[k];
        unsigned char c = (unsigned char)a->content[0];
        if (a->normalized && tok->nfc) {
            tok->norm_first[c] = 1;
            tok->has_norm_added = 1;
        } else {
            tok->raw_first[c] = 1;
            tok->has_raw_added = 1;
        }
    }
}

/* Both entry points: checks the limits, finds the layout and builds the tokenizer from src. */
static tkr_status load_from(const tok_src *src, const char *where, const tkr_tokenizer_limits *limits,
                            tkr_tokenizer **out, tkr_error *err) {
    tok_builder b;
    memset(&b, 0, sizeof b);
    b.lim = limits ? *limits : tkr_tokenizer_default_limits();
    if (b.lim.max_token_bytes == 0 || b.lim.max_token_bytes > ((size_t)1 << 20) ||
        b.lim.max_ids <= 0 || b.lim.max_added < 0)
        return tkr_fail(err, TKR_ERR_INVALID_ARG, "tkr_tokenizer_load: bad limits");
    int has_json = src_exists(src, TF_JSON);
    if (!has_json && !(src_exists(src, TF_VOCAB) && src_exists(src, TF_MERGES)))
        return tkr_fail(err, TKR_ERR_IO,
                        "%s: no tokenizer found (need tokenizer.json, or vocab.json and merges.txt)",
                        where);
    tkr_tokenizer *tok = calloc(1, sizeof *tok);
    b.tok = tok;
    b.tmp = malloc(2 * b.lim.max_token_bytes);
    if (!tok || !b.tmp) {
        free(tok);
        free(b.tmp);
        return tkr_fail(err, TKR_ERR_NOMEM, "out of memory loading the tokenizer");
    }
    json_t *cfg = NULL;
    tkr_status st = TKR_OK;
    if (src_exists(src, TF_CONFIG)) st = load_json(src, TF_CONFIG, b.lim.max_file_bytes, &cfg, err);
    if (st == TKR_OK && cfg && !json_is_object(cfg))
        st = tkr_fail(err, TKR_ERR_FORMAT, "%s: not a JSON object", src->path[TF_CONFIG]);
    if (st == TKR_OK) {
        tok->split_special = get_bool(cfg, "split_special_tokens", 0);
        if (has_json)
            st = load_tokenizer_json(&b, src, err);
        else
            st = load_slow(&b, src, cfg, err);
    }
    json_decref(cfg);
    free(b.tmp);
    free(b.v_id);
    free(b.v_off);
    free(b.v_len);
    if (st != TKR_OK) {
        tkr_tokenizer_free(tok);
        return st;
    }
    tok_index_added(tok);
    *out = tok;
    return TKR_OK;
}

tkr_status tkr_tokenizer_load_ex(const char *model_dir, const tkr_tokenizer_limits *limits,
                                 tkr_tokenizer **out, tkr_error *err) {
    if (!out) return tkr_fail(err, TKR_ERR_INVALID_ARG, "tkr_tokenizer_load: out is NULL");
    *out = NULL;
    if (!model_dir) return tkr_fail(err, TKR_ERR_INVALID_ARG, "tkr_tokenizer_load: no directory");
    tok_src *src = calloc(1, sizeof *src);   /* 20 KB of paths: not on the stack */
    if (!src) return tkr_fail(err, TKR_ERR_NOMEM, "out of memory loading the tokenizer");
    for (int f = 0; f < TF_N; f++)
        if (!tkr_path_join(src->path[f], sizeof src->path[f], model_dir, tf_names[f])) {
            free(src);
            return tkr_fail(err, TKR_ERR_INVALID_ARG, "tokenizer directory path too long");
        }
    tkr_status st = load_from(src, model_dir, limits, out, err);
    free(src);
    return st;
}

tkr_status tkr_tokenizer_load_memory(const tkr_tokenizer_files *files, const char *label,
                                     const tkr_tokenizer_limits *limits, tkr_tokenizer **out,
                                     tkr_error *err) {
    if (!out) return tkr_fail(err, TKR_ERR_INVALID_ARG, "tkr_tokenizer_load: out is NULL");
    *out = NULL;
    if (!files) return tkr_fail(err, TKR_ERR_INVALID_ARG, "tkr_tokenizer_load: no files");
    if (!label) label = "(memory)";
    tok_src *src = calloc(1, sizeof *src);
    if (!src) return tkr_fail(err, TKR_ERR_NOMEM, "out of memory loading the tokenizer");
    src->in_memory = 1;
    const char *const data[TF_N] = {files->tokenizer_json, files->vocab_json, files->merges_txt,
                                    files->config_json, files->added_tokens_json};
    const size_t len[TF_N] = {files->tokenizer_json_len, files->vocab_json_len,
                              files->merges_txt_len, files->config_json_len,
                              files->added_tokens_json_len};
    for (int f = 0; f < TF_N; f++) {
        src->data[f] = data[f];
        src->len[f] = len[f];
        if (!tkr_path_join(src->path[f], sizeof src->path[f], label, tf_names[f])) {
            free(src);
            return tkr_fail(err, TKR_ERR_INVALID_ARG, "tokenizer label too long");
        }
    }
    tkr_status st = load_from(src, label, limits, out, err);
    free(src);
    return st;
}

tkr_status tkr_tokenizer_load(const char *model_dir, tkr_tokenizer **out, tkr_error *err) {
    return tkr_tokenizer_load_ex(model_dir, NULL, out, err);
}

void tkr_tokenizer_free(tkr_tokenizer *tok) {
    if (!tok) return;
    free(tok->arena);
    free(tok->tok_off);
    free(tok->tok_len);
    tok_strmap_free(&tok->vocab);
    for (int32_t i = 0; i < tok->n_odd; i++) free(tok->odd_str[i]);
    free(tok->odd_str);
    free(tok->odd_id);
    tok_mergemap_free(&tok->merges);
    for (int32_t i = 0; i < tok->n_added; i++) free(tok->added[i].content);
    free(tok->added);
    free(tok->added_by_id);
    free(tok);
}
