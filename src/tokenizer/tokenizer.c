/* tokenizer.c - the tokenize pipeline (see tokenizer.h for the steps) and token look-ups. */
#include "tokenizer/tok_internal.h"
#include "util/error.h"

#include <stdlib.h>
#include <string.h>

/* Everything one tokenize call carries around: the output array and the per-call scratch. */
typedef struct {
    const tkr_tokenizer *tok;
    int32_t **ids;
    size_t *n, *cap;
    tok_bpe_scratch bpe;
    const char *word_base;   /* the segment tkr_qwen2_pretokenize is walking             */
    tkr_status st;
    tkr_error *err;
} tok_call;

/* ---- look-ups -------------------------------------------------------------------------------- */

int32_t tkr_tokenizer_token_id(const tkr_tokenizer *tok, const char *token_string) {
    if (!tok || !token_string) return -1;
    size_t len = strlen(token_string);
    for (int32_t k = 0; k < tok->n_added; k++)
        if (tok->added[k].len == len && !memcmp(tok->added[k].content, token_string, len))
            return tok->added[k].id;
    /* File form -> raw bytes, then the byte map. */
    if (len == 0 || len > 4 * 4096) return -1;
    char buf[4096];
    size_t n = 0, i = 0;
    const unsigned char *u = (const unsigned char *)token_string;
    int byte_level = 1;
    while (i < len && byte_level) {
        uint32_t cp;
        i += tok_utf8_decode(u + i, len - i, &cp);
        int b = tok_cp_to_byte(cp);
        if (b < 0 || n >= sizeof buf) byte_level = 0;
        else buf[n++] = (char)b;
    }
    if (byte_level) {
        int32_t id = tok_strmap_find(tok, buf, n);
        if (id >= 0) return id;
    }
    for (int32_t k = 0; k < tok->n_odd; k++)
        if (!strcmp(tok->odd_str[k], token_string)) return tok->odd_id[k];
    return -1;
}

const char *tkr_tokenizer_token_bytes(const tkr_tokenizer *tok, int32_t id, size_t *len) {
    if (len) *len = 0;
    if (!tok || id < 0 || id >= tok->n_ids) return NULL;
    if (tok->added_by_id[id] >= 0) {
        const tok_added *a = &tok->added[tok->added_by_id[id]];
        if (len) *len = a->len;
        return a->content;
    }
    if (tok->tok_off[id] == UINT32_MAX) return NULL;
    if (len) *len = tok->tok_len[id];
    return tok->arena + tok->tok_off[id];
}

int32_t tkr_tokenizer_vocab_size(const tkr_tokenizer *tok) { return tok ? tok->n_ids : 0; }

/* ---- added-token splitting ------------------------------------------------------------------- */

/* The character ending at s[end) (end > 0) of valid UTF-8, and where it starts. */
static uint32_t char_before(const char *s, size_t end, size_t *start) {
    size_t j = end - 1;
    while (j > 0 && ((unsigned char)s[j] & 0xC0) == 0x80) j--;
    uint32_t cp;
    tok_utf8_decode((const unsigned char *)s + j, end - j, &cp);
    *start = j;
    return cp;
}

/* The character starting at s[i] (i < len). */
static uint32_t char_at(const char *s, size_t len, size_t i) {
    uint32_t cp;
    tok_utf8_decode((const unsigned char *)s + i, len - i, &cp);
    return cp;
}

typedef tkr_status (*segment_fn)(tok_call *c, const char *s, size_t len);

/* Splits s[0..len) at the added tokens matched in this pass (normalized = 0: raw text, 1:
 * normalised text), as HF's AddedVocabulary does: scan left to right; at each position take
 * the longest token that starts there; skip it (and go on after it) if it is special and
 * special tokens are split, or if it is single_word and touches a word; else lstrip/rstrip
 * widen it over neighbouring whitespace, the text before it goes to plain(), its id is
 * appended. */
static tkr_status split_added(tok_call *c, int normalized, const char *s, size_t len,
                              segment_fn plain) {
    const tkr_tokenizer *tok = c->tok;
    const uint8_t *first = normalized ? tok->norm_first : tok->raw_first;
    int pass_normalized = normalized && tok->nfc;
    size_t start_offset = 0, i = 0;
    tkr_status st;
    while (i < len) {
        if (!first[(unsigned char)s[i]]) {
            i++;
            continue;
        }
        const tok_added *best = NULL;
        for (int32_t k = 0; k < tok->n_added; k++) {
            const tok_added *a = &tok->added[k];
            if ((a->normalized && tok->nfc) != pass_normalized) continue;
            if (a->len <= len - i && (!best || a->len > best->len) &&
                !memcmp(s + i, a->content, a->len))
                best = a;
        }
        if (!best) {
            i++;
            continue;
        }
        size_t start = i, stop = i + best->len, cs;
        i = stop;
        if (tok->split_special && best->special) continue;
        if (best->single_word && ((start > 0 && tok_is_alnum(char_before(s, start, &cs))) ||
                                  (stop < len && tok_is_alnum(char_at(s, len, stop)))))
            continue;
        if (best->lstrip)
            while (start > start_offset && tok_is_white_space(char_before(s, start, &cs)))
                start = cs;
        if (best->rstrip) {
            while (stop < len) {
                uint32_t cp;
                size_t n = tok_utf8_decode((const unsigned char *)s + stop, len - stop, &cp);
                if (!tok_is_white_space(cp)) break;
                stop += n;
            }
            i = stop;
        }
        if (start > start_offset && (st = plain(c, s + start_offset, start - start_offset)) != TKR_OK)
            return st;
        if ((st = tok_push_id(c->ids, c->n, c->cap, best->id, c->err)) != TKR_OK) return st;
        start_offset = stop;
    }
    if (start_offset < len) return plain(c, s + start_offset, len - start_offset);
    return TKR_OK;
}

/* ---- segments -------------------------------------------------------------------------------- */

static int emit_word(void *ctx, size_t start, size_t end) {
    tok_call *c = ctx;
    c->st = tok_bpe_word(c->tok, c->word_base + start, end - start, &c->bpe, c->ids, c->n, c->cap,
                         c->err);
    return c->st != TKR_OK;
}

/* Normalised text without added tokens: pre-tokenize and BPE each word. */
static tkr_status words(tok_call *c, const char *s, size_t len) {
    c->word_base = s;
    c->st = TKR_OK;
    tkr_qwen2_pretokenize(s, len, emit_word, c);
    return c->st;
}

/* A raw segment between raw-matched added tokens: normalise, then split at the normalized
 * added tokens (if the tokenizer has any), then words. */
static tkr_status raw_segment(tok_call *c, const char *s, size_t len) {
    char *nfc = NULL;
    size_t nlen = len;
    if (c->tok->nfc) {
        tkr_status st = tok_nfc(s, len, &nfc, &nlen, c->err);
        if (st != TKR_OK) return st;
    }
    const char *t = nfc ? nfc : s;
    tkr_status st = c->tok->has_norm_added ? split_added(c, 1, t, nlen, words)
                                           : words(c, t, nlen);
    free(nfc);
    return st;
}

tkr_status tkr_tokenize_append(const tkr_tokenizer *tok, const char *text, size_t len,
                               int32_t **ids, size_t *n, size_t *cap, tkr_error *err) {
    if (!tok || !ids || !n || !cap || (!text && len))
        return tkr_fail(err, TKR_ERR_INVALID_ARG, "tkr_tokenize: NULL argument");
    size_t n0 = *n;
    char *clean = NULL;
    size_t clen = len;
    tkr_status st = tkr_utf8_sanitize(text, len, &clean, &clen, err);
    if (st != TKR_OK) return st;
    const char *t = clean ? clean : text;
    tok_call c;
    memset(&c, 0, sizeof c);
    c.tok = tok;
    c.ids = ids;
    c.n = n;
    c.cap = cap;
    c.err = err;
    if (clen == 0) st = TKR_OK;
    else if (tok->has_raw_added) st = split_added(&c, 0, t, clen, raw_segment);
    else st = raw_segment(&c, t, clen);
    tok_bpe_scratch_free(&c.bpe);
    free(clean);
    if (st != TKR_OK) *n = n0;
    return st;
}

tkr_status tkr_tokenize(const tkr_tokenizer *tok, const char *text, size_t len, int32_t **ids,
                        size_t *n_ids, tkr_error *err) {
    if (!ids || !n_ids) return tkr_fail(err, TKR_ERR_INVALID_ARG, "tkr_tokenize: NULL output");
    *ids = NULL;
    *n_ids = 0;
    int32_t *arr = NULL;
    size_t n = 0, cap = 0;
    tkr_status st = tkr_tokenize_append(tok, text, len, &arr, &n, &cap, err);
    if (st == TKR_OK && !arr) { /* zero tokens: still hand back a freeable array */
        arr = malloc(sizeof *arr);
        if (!arr) st = tkr_fail(err, TKR_ERR_NOMEM, "out of memory");
    }
    if (st != TKR_OK) {
        free(arr);
        return st;
    }
    *ids = arr;
    *n_ids = n;
    return TKR_OK;
}
