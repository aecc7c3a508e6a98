/* base64.c - see base64.h. */
#include "util/base64.h"
#include "util/error.h"

#include <stdlib.h>

static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

size_t tkr_base64_encoded_size(size_t n) {
    size_t groups = n / 3 + (n % 3 != 0);
    size_t out;
    if (!tkr_mul_size(groups, 4, &out) || !tkr_add_size(out, 1, &out)) return 0;
    return out;
}

void tkr_base64_encode(const uint8_t *data, size_t n, char *out) {
    size_t i = 0;
    char *o = out;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)data[i] << 16 | (uint32_t)data[i + 1] << 8 | data[i + 2];
        *o++ = b64_alphabet[v >> 18 & 63];
        *o++ = b64_alphabet[v >> 12 & 63];
        *o++ = b64_alphabet[v >> 6 & 63];
        *o++ = b64_alphabet[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)data[i] << 16;
        *o++ = b64_alphabet[v >> 18 & 63];
        *o++ = b64_alphabet[v >> 12 & 63];
        *o++ = '=';
        *o++ = '=';
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)data[i] << 16 | (uint32_t)data[i + 1] << 8;
        *o++ = b64_alphabet[v >> 18 & 63];
        *o++ = b64_alphabet[v >> 12 & 63];
        *o++ = b64_alphabet[v >> 6 & 63];
        *o++ = '=';
    }
    *o = '\0';
}

static int b64_value(unsigned char c) {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}

static int is_space(unsigned char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

tkr_status tkr_base64_decode(const char *text, size_t len, size_t max_out, uint8_t **out,
                             size_t *out_len, tkr_error *err) {
    *out = NULL;
    *out_len = 0;
    /* The decoded size is at most 3/4 of the input: allocate once, fail before any work. */
    size_t cap = len / 4 * 3 + 3;
    if (max_out && cap > max_out + 3) {
        /* Whitespace could make the real size smaller; count significant characters first. */
        size_t sig = 0;
        for (size_t i = 0; i < len; i++) sig += !is_space((unsigned char)text[i]) && text[i] != '=';
        if (sig / 4 * 3 + (sig % 4 ? sig % 4 - 1 : 0) > max_out)
            return tkr_fail(err, TKR_ERR_LIMIT, "base64 payload decodes to more than %zu bytes",
                            max_out);
    }
    uint8_t *buf = malloc(cap ? cap : 1);
    if (!buf) return tkr_fail(err, TKR_ERR_NOMEM, "out of memory decoding base64");
    size_t n = 0;
    uint32_t acc = 0;
    int bits = 0, pad = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)text[i];
        if (is_space(c)) continue;
        if (c == '=') {
            pad++;
            continue;
        }
        int v = b64_value(c);
        if (v < 0 || pad) {
            free(buf);
            return tkr_fail(err, TKR_ERR_INVALID_ARG, "invalid base64 character at offset %zu", i);
        }
        acc = acc << 6 | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            buf[n++] = (uint8_t)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    /* 6 leftover bits can never come from whole bytes: the input was cut. */
    if (bits >= 6 || pad > 2) {
        free(buf);
        return tkr_fail(err, TKR_ERR_INVALID_ARG, "truncated base64 payload");
    }
    if (max_out && n > max_out) {
        free(buf);
        return tkr_fail(err, TKR_ERR_LIMIT, "base64 payload decodes to more than %zu bytes", max_out);
    }
    *out = buf;
    *out_len = n;
    return TKR_OK;
}
