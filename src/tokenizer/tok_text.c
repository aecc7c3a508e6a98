/* tok_text.c - the text side of the tokenizer: UTF-8 repair, NFC, character classes and the
 * hand-written Qwen2 pre-tokenizer.
 *
 * The pre-tokenizer reproduces what Oniguruma (the regex engine of HF tokenizers) does with
 *
 *   (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*
 *   |\s*[\r\n]+|\s+(?!\S)|\s+
 *
 * applied with find-all (each match starts where the previous one ended, and every character
 * is covered because the alternatives together match any character). \p{L} and \p{N} are the
 * general categories L* and N* (utf8proc); \s is the Unicode White_Space property. */
#include "tokenizer/tok_internal.h"
#include "util/error.h"

#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

/* ---- UTF-8 ----------------------------------------------------------------------------------- */

/* Length of the well-formed UTF-8 sequence at s[0..len) (Unicode table 3-7), or, when it is
 * ill-formed, minus the length of its maximal subpart (the bytes one U+FFFD replaces). */
static long utf8_seq(const unsigned char *s, size_t len) {
    unsigned char c = s[0];
    if (c < 0x80) return 1;
    size_t need;
    unsigned char lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
    if (c >= 0xC2 && c <= 0xDF) need = 2;
    else if (c == 0xE0) { need = 3; lo = 0xA0; }
    else if (c >= 0xE1 && c <= 0xEC) need = 3;
    else if (c == 0xED) { need = 3; hi = 0x9F; }   /* no UTF-16 surrogates */
    else if (c >= 0xEE && c <= 0xEF) need = 3;
    else if (c == 0xF0) { need = 4; lo = 0x90; }   /* no overlong 4-byte forms */
    else if (c >= 0xF1 && c <= 0xF3) need = 4;
    else if (c == 0xF4) { need = 4; hi = 0x8F; }   /* nothing above U+10FFFF */
    else return -1;                                /* 80..C1, F5..FF: never valid */
    if (len < 2 || s[1] < lo || s[1] > hi) return -1;
    for (size_t k = 2; k < need; k++)
        if (k >= len || (s[k] & 0xC0) != 0x80) return -(long)k;
    return (long)need;
}

size_t tok_utf8_decode(const unsigned char *s, size_t len, uint32_t *cp) {
    unsigned char c = s[0];
    if (c < 0x80 || len < 2) { *cp = c; return 1; }
    if (c < 0xE0) { *cp = (uint32_t)(c & 0x1F) << 6 | (s[1] & 0x3F); return 2; }
    if (c < 0xF0 || len < 4) {
        if (len < 3) { *cp = c; return 1; }
        *cp = (uint32_t)(c & 0x0F) << 12 | (uint32_t)(s[1] & 0x3F) << 6 | (s[2] & 0x3F);
        return 3;
    }
    *cp = (uint32_t)(c & 0x07) << 18 | (uint32_t)(s[1] & 0x3F) << 12 | (uint32_t)(s[2] & 0x3F) << 6 |
          (s[3] & 0x3F);
    return 4;
}

tkr_status tkr_utf8_sanitize(const char *text, size_t len, char **out, size_t *out_len,
                             tkr_error *err) {
    const unsigned char *s = (const unsigned char *)text;
    *out = NULL;
    *out_len = len;
    size_t i = 0;
    while (i < len) { /* find the first ill-formed sequence, if any */
        if (s[i] < 0x80) { i++; continue; }
        long n = utf8_seq(s + i, len - i);
        if (n < 0) break;
        i += (size_t)n;
    }
    if (i == len) return TKR_OK;
    size_t cap;
    if (!tkr_mul_size(len, 3, &cap) || !tkr_add_size(cap, 1, &cap))
        return tkr_fail(err, TKR_ERR_LIMIT, "text of %zu bytes is too long", len);
    unsigned char *o = malloc(cap);
    if (!o) return tkr_fail(err, TKR_ERR_NOMEM, "out of memory repairing UTF-8 (%zu bytes)", len);
    memcpy(o, s, i);
    size_t w = i;
    while (i < len) {
        long n = s[i] < 0x80 ? 1 : utf8_seq(s + i, len - i);
        if (n > 0) {
            memcpy(o + w, s + i, (size_t)n);
            w += (size_t)n;
            i += (size_t)n;
        } else {
            o[w++] = 0xEF; o[w++] = 0xBF; o[w++] = 0xBD; /* U+FFFD */
            i += (size_t)-n;
        }
    }
    o[w] = 0;
    *out = (char *)o;
    *out_len = w;
    return TKR_OK;
}

/* ---- character classes ----------------------------------------------------------------------- */

enum { C_OTHER = 0, C_L = 1, C_N = 2, C_WS = 4, C_NL = 8 };

/* ASCII classes: letters, digits, White_Space (\t \n \v \f \r and space), CR/LF. */
static const uint8_t ascii_class[128] = {
    0, 0, 0, 0, 0, 0, 0, 0, 0, C_WS, C_WS | C_NL, C_WS, C_WS, C_WS | C_NL, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    C_WS, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    C_N, C_N, C_N, C_N, C_N, C_N, C_N, C_N, C_N, C_N, 0, 0, 0, 0, 0, 0,
    0, C_L, C_L, C_L, C_L, C_L, C_L, C_L, C_L, C_L, C_L, C_L, C_L, C_L, C_L, C_L,
    C_L, C_L, C_L, C_L, C_L, C_L, C_L, C_L, C_L, C_L, C_L, 0, 0, 0, 0, 0,
    0, C_L, C_L, C_L, C_L, C_L, C_L, C_L, C_L, C_L, C_L, C_L, C_L, C_L, C_L, C_L,
    C_L, C_L, C_L, C_L, C_L, C_L, C_L, C_L, C_L, C_L, C_L, 0, 0, 0, 0, 0,
};

int tok_is_white_space(uint32_t cp) {
    if (cp < 128) return (ascii_class[cp] & C_WS) != 0;
    return cp == 0x85 || cp == 0xA0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) ||
           cp == 0x2028 || cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

static int cp_class(uint32_t cp) {
    if (cp < 128) return ascii_class[cp];
    if (tok_is_white_space(cp)) return C_WS;
    utf8proc_category_t cat = utf8proc_category((utf8proc_int32_t)cp);
    if (cat >= UTF8PROC_CATEGORY_LU && cat <= UTF8PROC_CATEGORY_LO) return C_L;
    if (cat >= UTF8PROC_CATEGORY_ND && cat <= UTF8PROC_CATEGORY_NO) return C_N;
    return C_OTHER;
}

int tok_is_alnum(uint32_t cp) { return (cp_class(cp) & (C_L | C_N)) != 0; }

/* Class of the character at s[i] (i < len); its byte length in *n. */
static inline int class_at(const unsigned char *s, size_t len, size_t i, size_t *n) {
    if (s[i] < 0x80) {
        *n = 1;
        return ascii_class[s[i]];
    }
    uint32_t cp;
    *n = tok_utf8_decode(s + i, len - i, &cp);
    return cp_class(cp);
}

/* ---- NFC ------------------------------------------------------------------------------------- */

/* Code points that are NFC on their own, have combining class 0 and never compose with the
 * character before them, so any string made only of them is already NFC. The ranges cover
 * Latin-1, Latin Extended-A/B and IPA, Cyrillic letters, general punctuation (curly quotes,
 * dashes), currency, CJK ideographs and punctuation, kana, Hangul syllables, fullwidth forms
 * and emoji; test_tokenizer checks every one of them against utf8proc's tables. */
int tok_nfc_inert(uint32_t cp) {
    return cp < 0x300 || (cp >= 0x400 && cp <= 0x482) || (cp >= 0x48A && cp <= 0x52F) ||
           (cp >= 0x2010 && cp <= 0x20CF) || (cp >= 0x3000 && cp <= 0x3029) ||
           (cp >= 0x3030 && cp <= 0x303F) || (cp >= 0x3041 && cp <= 0x3096) ||
           (cp >= 0x30A1 && cp <= 0x30FA) || (cp >= 0x4E00 && cp <= 0x9FFF) ||
           (cp >= 0xAC00 && cp <= 0xD7A3) || (cp >= 0xFF01 && cp <= 0xFF60) ||
           (cp >= 0x1F300 && cp <= 0x1FAFF);
}

tkr_status tok_nfc(const char *text, size_t len, char **out, size_t *out_len, tkr_error *err) {
    const unsigned char *s = (const unsigned char *)text;
    *out = NULL;
    *out_len = len;
    int inert = 1;
    for (size_t i = 0; i < len && inert;) {
        if (s[i] < 0x80) { i++; continue; }
        uint32_t cp;
        i += tok_utf8_decode(s + i, len - i, &cp);
        inert = tok_nfc_inert(cp);
    }
    if (inert) return TKR_OK;
    if (len > (size_t)PTRDIFF_MAX / 4)
        return tkr_fail(err, TKR_ERR_LIMIT, "text of %zu bytes is too long to normalise", len);
    utf8proc_uint8_t *dst = NULL;
    utf8proc_ssize_t n = utf8proc_map(s, (utf8proc_ssize_t)len, &dst,
                                      UTF8PROC_STABLE | UTF8PROC_COMPOSE);
    if (n < 0) {
        free(dst);
        if (n == UTF8PROC_ERROR_NOMEM)
            return tkr_fail(err, TKR_ERR_NOMEM, "out of memory normalising %zu bytes", len);
        return tkr_fail(err, TKR_ERR_INTERNAL, "NFC normalisation failed: %s",
                        utf8proc_errmsg(n));
    }
    *out = (char *)dst;
    *out_len = (size_t)n;
    return TKR_OK;
}

/* ---- the Qwen2 pre-tokenizer ----------------------------------------------------------------- */

static inline unsigned char ascii_lower(unsigned char c) {
    return c >= 'A' && c <= 'Z' ? (unsigned char)(c + 32) : c;
}

/* (?i:'s|'t|'re|'ve|'m|'ll|'d) at s[i] == '\''. Case-insensitive for ASCII only: HF does not
 * match U+017F (long s) here (checked against HF tokenizers). Returns the end of the match or 0. */
static size_t match_contraction(const unsigned char *s, size_t len, size_t i) {
    if (i + 1 >= len) return 0;
    unsigned char c = ascii_lower(s[i + 1]);
    if (c == 's' || c == 't' || c == 'm' || c == 'd') return i + 2;
    if (i + 2 >= len) return 0;
    unsigned char c2 = ascii_lower(s[i + 2]);
    if ((c == 'r' && c2 == 'e') || (c == 'v' && c2 == 'e') || (c == 'l' && c2 == 'l')) return i + 3;
    return 0;
}

/* End of the run of characters whose class has any bit of mask (mask 0: class exactly OTHER). */
static size_t scan_class(const unsigned char *s, size_t len, size_t i, int mask) {
    while (i < len) {
        size_t n;
        int k = class_at(s, len, i, &n);
        if (mask ? !(k & mask) : k != C_OTHER) break;
        i += n;
    }
    return i;
}

/* End of the whitespace-led match at s[i]: \s*[\r\n]+ | \s+(?!\S) | \s+ . */
static size_t match_space(const unsigned char *s, size_t len, size_t i) {
    size_t j = i, last_start = i, count = 0, last_nl = SIZE_MAX;
    while (j < len) {
        size_t n;
        int k = class_at(s, len, j, &n);
        if (!(k & C_WS)) break;
        if (k & C_NL) last_nl = j;
        last_start = j;
        j += n;
        count++;
    }
    if (last_nl != SIZE_MAX) return last_nl + 1; /* up to and including the last CR/LF */
    if (j == len || count < 2) return j;         /* (?!\S) holds at the end; else plain \s+ */
    return last_start;                           /* leave the last space for the next word */
}

int tkr_qwen2_pretokenize(const char *text, size_t len,
                          int (*emit)(void *ctx, size_t start, size_t end), void *ctx) {
    const unsigned char *s = (const unsigned char *)text;
    size_t i = 0;
    while (i < len) {
        size_t n0, n1 = 0, end = 0;
        int k0 = class_at(s, len, i, &n0);
        int k1 = i + n0 < len ? class_at(s, len, i + n0, &n1) : -1;
        if (s[i] == '\'') end = match_contraction(s, len, i);
        if (end) {
            /* contraction */
        } else if (k0 & C_L) {
            end = scan_class(s, len, i + n0, C_L);
        } else if (!(k0 & (C_N | C_NL)) && k1 >= 0 && (k1 & C_L)) {
            end = scan_class(s, len, i + n0 + n1, C_L); /* one non-letter prefix + letters */
        } else if (k0 & C_N) {
            end = i + n0;
        } else if (k0 == C_OTHER || (s[i] == ' ' && k1 == C_OTHER)) {
            size_t p = k0 == C_OTHER ? i : i + 1;
            end = scan_class(s, len, p, 0);
            while (end < len && (s[end] == '\r' || s[end] == '\n')) end++;
        } else {
            end = match_space(s, len, i);
        }
        int rc = emit(ctx, i, end);
        if (rc) return rc;
        i = end;
    }
    return 0;
}
