/* tok_gguf.c - the tokenizer from GGUF metadata (llama.cpp's "gpt2" vocabulary), and the
 * inverse: a tokenizer as the arrays a GGUF carries.
 *
 * Keys read: tokenizer.ggml.model "gpt2"; tokenizer.ggml.pre "qwen2"; tokenizer.ggml.tokens
 * [n] strings in the byte-level alphabet; tokenizer.ggml.token_type [n] (1 normal, 3 control,
 * 4 user-defined, 5 unused; 2 unknown and 6 byte are read as normal entries);
 * tokenizer.ggml.merges ["a b", ...] in rank order.
 * Mapping to the HF tokenizer (so that ids come out identical): normal entries are the BPE
 * vocabulary; control tokens are added special tokens (matched literally, never normalised);
 * user-defined tokens are added non-special tokens (HF's default: normalized); unused entries
 * ("[PAD151646]", padding up to the embedding size) are no token at all. The Qwen2 recipe of
 * tokenizer.json is implied by pre "qwen2": NFC normalizer, the Qwen2 split regex, byte level,
 * merges not ignored. */
#include "tokenizer/tok_internal.h"
#include "io/gguf.h"
#include "util/error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define K_MODEL "tokenizer.ggml.model"
#define K_PRE "tokenizer.ggml.pre"
#define K_TOKENS "tokenizer.ggml.tokens"
#define K_TYPES "tokenizer.ggml.token_type"
#define K_MERGES "tokenizer.ggml.merges"

/* Valid UTF-8 check (the byte-level decoder expects valid input). */
static int utf8_valid(const char *s, size_t len) {
    char *fixed = NULL;
    size_t fl = 0;
    tkr_error e;
    if (tkr_utf8_sanitize(s, len, &fixed, &fl, &e) != TKR_OK) return 0;
    if (fixed) {
        free(fixed);
        return 0;
    }
    return 1;
}

typedef struct {
    const tkr_gguf *g;
    int32_t *vocab_ids;   /* [n_vocab] token index of each normal entry */
    const char *path;
} gguf_vocab;

static tkr_status gguf_vocab_get(void *ctx, size_t k, const char **s, size_t *len, int64_t *id,
                                 tkr_error *err) {
    gguf_vocab *gv = ctx;
    *id = gv->vocab_ids[k];
    if (!tkr_gguf_arr_str(gv->g, K_TOKENS, (size_t)*id, s, len))
        return tkr_fail(err, TKR_ERR_FORMAT, "%s: " K_TOKENS "[%lld] is not a string", gv->path,
                        (long long)*id);
    if (!utf8_valid(*s, *len))
        return tkr_fail(err, TKR_ERR_FORMAT, "%s: " K_TOKENS "[%lld] is not valid UTF-8", gv->path,
                        (long long)*id);
    return TKR_OK;
}

static tkr_status from_gguf(tok_builder *b, const tkr_gguf *g, const char *path, tkr_error *err) {
    tkr_tokenizer *tok = b->tok;
    const char *s;
    size_t len;
    if (!tkr_gguf_get_str(g, K_MODEL, &s, &len))
        return tkr_fail(err, TKR_ERR_FORMAT, "%s: no " K_MODEL " (no tokenizer in this GGUF)", path);
    if (len != 4 || memcmp(s, "gpt2", 4))
        return tkr_fail(err, TKR_ERR_UNSUPPORTED, "%s: " K_MODEL " '%.*s' is not supported (only gpt2)",
                        path, (int)(len > 64 ? 64 : len), s);
    if (!tkr_gguf_get_str(g, K_PRE, &s, &len))
        return tkr_fail(err, TKR_ERR_FORMAT, "%s: no " K_PRE, path);
    if (len != 5 || memcmp(s, "qwen2", 5))
        return tkr_fail(err, TKR_ERR_UNSUPPORTED, "%s: " K_PRE " '%.*s' is not supported (only qwen2)",
                        path, (int)(len > 64 ? 64 : len), s);
    tok->nfc = 1;
    tok->ignore_merges = 0;
    tok->split_special = 0;
    tkr_gguf_type et;
    size_t n_tok, n_types, n_merges;
    if (!tkr_gguf_get_arr(g, K_TOKENS, &et, &n_tok) || et != TKR_GGUF_STRING)
        return tkr_fail(err, TKR_ERR_FORMAT, "%s: " K_TOKENS " missing or not an array of strings", path);
    if (!tkr_gguf_get_arr(g, K_TYPES, &et, &n_types) ||
        (et != TKR_GGUF_INT32 && et != TKR_GGUF_UINT32))
        return tkr_fail(err, TKR_ERR_FORMAT, "%s: " K_TYPES " missing or not an array of integers", path);
    if (n_types != n_tok)
        return tkr_fail(err, TKR_ERR_FORMAT, "%s: %zu tokens but %zu token types", path, n_tok, n_types);
    if (!tkr_gguf_get_arr(g, K_MERGES, &et, &n_merges) || et != TKR_GGUF_STRING)
        return tkr_fail(err, TKR_ERR_FORMAT, "%s: " K_MERGES " missing or not an array of strings", path);
    if (n_tok == 0 || n_tok > (size_t)b->lim.max_ids)
        return tkr_fail(err, TKR_ERR_LIMIT, "%s: %zu tokens (1..%d)", path, n_tok, b->lim.max_ids);
    gguf_vocab gv = {g, malloc(n_tok * sizeof(int32_t)), path};
    if (!gv.vocab_ids) return tkr_fail(err, TKR_ERR_NOMEM, "%s: out of memory", path);
    size_t n_vocab = 0;
    tkr_status st = TKR_OK;
    for (size_t i = 0; i < n_tok && st == TKR_OK; i++) {
        int64_t t;
        if (!tkr_gguf_arr_int(g, K_TYPES, i, &t)) t = -1;
        if (t == 1 || t == 2 || t == 6) gv.vocab_ids[n_vocab++] = (int32_t)i;
        else if (t != 3 && t != 4 && t != 5)
            st = tkr_fail(err, TKR_ERR_FORMAT, "%s: " K_TYPES "[%zu] = %lld is not a token type",
                          path, i, (long long)t);
    }
    if (st == TKR_OK) st = tok_read_vocab_entries(b, n_vocab, gguf_vocab_get, &gv, path, err);
    free(gv.vocab_ids);
    if (st != TKR_OK) return st;
    if (tok_mergemap_init(&tok->merges, n_merges) != TKR_OK)
        return tkr_fail(err, TKR_ERR_NOMEM, "%s: out of memory", path);
    for (size_t i = 0; i < n_merges; i++) {
        if (!tkr_gguf_arr_str(g, K_MERGES, i, &s, &len) || !utf8_valid(s, len))
            return tkr_fail(err, TKR_ERR_FORMAT, "%s: " K_MERGES "[%zu] is not a UTF-8 string", path, i);
        const char *sp = memchr(s, ' ', len);
        if (!sp || sp == s || sp == s + len - 1 || memchr(sp + 1, ' ', (size_t)(s + len - sp - 1)))
            return tkr_fail(err, TKR_ERR_FORMAT, "%s: " K_MERGES "[%zu] is not 'a b'", path, i);
        char where[64];
        snprintf(where, sizeof where, K_MERGES "[%zu]", i);
        st = tok_add_merge(b, s, (size_t)(sp - s), sp + 1, (size_t)(s + len - sp - 1), i, where, err);
        if (st != TKR_OK) {
            tkr_error_prefix(err, "%s: ", path);
            return st;
        }
    }
    for (size_t i = 0; i < n_tok; i++) {
        int64_t t = 0;
        tkr_gguf_arr_int(g, K_TYPES, i, &t);
        if (t != 3 && t != 4) continue;
        if (!tkr_gguf_arr_str(g, K_TOKENS, i, &s, &len) || !utf8_valid(s, len))
            return tkr_fail(err, TKR_ERR_FORMAT, "%s: " K_TOKENS "[%zu] is not a UTF-8 string", path, i);
        int special = t == 3;
        st = tok_add_added(b, s, len, (int64_t)i, special, 0, 0, 0, !special, path, err);
        if (st != TKR_OK) return st;
    }
    return TKR_OK;
}

tkr_status tkr_tokenizer_from_gguf(const tkr_gguf *g, const tkr_tokenizer_limits *limits,
                                   tkr_tokenizer **out, tkr_error *err) {
    if (!out || !g) return tkr_fail(err, TKR_ERR_INVALID_ARG, "tkr_tokenizer_from_gguf: bad arguments");
    *out = NULL;
    tok_builder b;
    memset(&b, 0, sizeof b);
    b.lim = limits ? *limits : tkr_tokenizer_default_limits();
    if (b.lim.max_token_bytes == 0 || b.lim.max_token_bytes > ((size_t)1 << 20) ||
        b.lim.max_ids <= 0 || b.lim.max_added < 0)
        return tkr_fail(err, TKR_ERR_INVALID_ARG, "tkr_tokenizer_from_gguf: bad limits");
    tkr_tokenizer *tok = calloc(1, sizeof *tok);
    b.tok = tok;
    b.tmp = malloc(2 * b.lim.max_token_bytes);
    tkr_status st = tok && b.tmp ? from_gguf(&b, g, tkr_gguf_path(g), err)
                                 : tkr_fail(err, TKR_ERR_NOMEM, "out of memory loading the tokenizer");
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

/* ---- export ---------------------------------------------------------------------------------- */

/* bytes -> the byte-level alphabet (file form), NUL-terminated, malloc'ed. */
static char *byte_level(const char *bytes, size_t n) {
    char *out = malloc(2 * n + 1), *p = out;
    if (!out) return NULL;
    for (size_t i = 0; i < n; i++) {
        uint32_t cp = tok_byte_to_cp((uint8_t)bytes[i]);
        if (cp < 0x80) {
            *p++ = (char)cp;
        } else {
            *p++ = (char)(0xC0 | (cp >> 6));
            *p++ = (char)(0x80 | (cp & 0x3F));
        }
    }
    *p = 0;
    return out;
}

static int merge_rank_cmp(const void *a, const void *b) {
    const tok_merge *x = *(const tok_merge *const *)a, *y = *(const tok_merge *const *)b;
    return x->rank < y->rank ? -1 : x->rank > y->rank;
}

void tkr_tokenizer_export_free(tkr_tok_export *e) {
    if (!e) return;
    for (size_t i = 0; e->tokens && i < e->n_tokens; i++) free(e->tokens[i]);
    for (size_t i = 0; e->merges && i < e->n_merges; i++) free(e->merges[i]);
    free(e->tokens);
    free(e->types);
    free(e->merges);
    memset(e, 0, sizeof *e);
}

tkr_status tkr_tokenizer_export(const tkr_tokenizer *tok, int32_t n_ids, tkr_tok_export *e,
                                tkr_error *err) {
    memset(e, 0, sizeof *e);
    if (n_ids < tok->n_ids) n_ids = tok->n_ids;
    e->n_tokens = (size_t)n_ids;
    e->tokens = calloc(e->n_tokens, sizeof *e->tokens);
    e->types = calloc(e->n_tokens, sizeof *e->types);
    const tok_merge **ms = calloc(tok->merges.count ? tok->merges.count : 1, sizeof *ms);
    if (!e->tokens || !e->types || !ms) goto oom;
    for (int32_t id = 0; id < n_ids; id++) {
        char *s = NULL;
        int32_t type = 1;
        if (id < tok->n_ids && tok->added_by_id[id] >= 0) {
            const tok_added *a = &tok->added[tok->added_by_id[id]];
            s = malloc(a->len + 1);
            if (s) {
                memcpy(s, a->content, a->len);
                s[a->len] = 0;
            }
            type = a->special ? 3 : 4;
        } else if (id < tok->n_ids && tok->tok_off[id] != UINT32_MAX) {
            s = byte_level(tok->arena + tok->tok_off[id], tok->tok_len[id]);
        } else {
            const char *odd = NULL;
            for (int32_t k = 0; k < tok->n_odd && !odd; k++)
                if (tok->odd_id[k] == id) odd = tok->odd_str[k];
            if (odd) {
                s = strdup(odd);
            } else {
                char pad[32];
                snprintf(pad, sizeof pad, "[PAD%d]", (int)id);
                s = strdup(pad);
                type = 5;
            }
        }
        if (!s) goto oom;
        e->tokens[id] = s;
        e->types[id] = type;
    }
    size_t nm = 0;
    for (size_t i = 0; i < tok->merges.cap; i++)
        if (tok->merges.slots[i].key != UINT64_MAX) ms[nm++] = &tok->merges.slots[i];
    qsort(ms, nm, sizeof *ms, merge_rank_cmp);
    e->merges = calloc(nm ? nm : 1, sizeof *e->merges);
    if (!e->merges) goto oom;
    for (size_t i = 0; i < nm; i++) {
        int32_t l = (int32_t)(ms[i]->key >> 32), r = (int32_t)(ms[i]->key & 0xffffffffu);
        char *a = byte_level(tok->arena + tok->tok_off[l], tok->tok_len[l]);
        char *b = byte_level(tok->arena + tok->tok_off[r], tok->tok_len[r]);
        char *m = a && b ? malloc(strlen(a) + strlen(b) + 2) : NULL;
        if (m) sprintf(m, "%s %s", a, b);
        free(a);
        free(b);
        if (!m) goto oom;
        e->merges[e->n_merges++] = m;
    }
    free(ms);
    return TKR_OK;
oom:
    free(ms);
    tkr_tokenizer_export_free(e);
    return tkr_fail(err, TKR_ERR_NOMEM, "out of memory exporting the tokenizer");
}
