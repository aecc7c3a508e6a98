/* auth.c - see auth.h. */
#include "server/auth.h"

#include <ctype.h>
#include <string.h>

/* The loop runs over the secret's length whatever the guess is; the only branch depends on the
 * guess's own length, which the caller already knows. */
bool tkr_auth_equal(const char *guess, size_t guess_len, const char *secret, size_t secret_len) {
    volatile unsigned char diff = (unsigned char)(guess_len != secret_len);
    for (size_t i = 0; i < secret_len; i++) {
        unsigned char g = i < guess_len ? (unsigned char)guess[i] : 0;
        diff |= (unsigned char)(g ^ (unsigned char)secret[i]);
    }
    return diff == 0;
}

bool tkr_auth_check(const char *authorization, char *const *keys, int n_keys) {
    if (n_keys <= 0) return true;
    if (!authorization) return false;
    const char *p = authorization;
    while (*p == ' ' || *p == '\t') p++;
    static const char scheme[] = "bearer";
    for (size_t i = 0; i < sizeof scheme - 1; i++)
        if (tolower((unsigned char)p[i]) != scheme[i]) return false;
    p += sizeof scheme - 1;
    if (*p != ' ' && *p != '\t') return false;
    while (*p == ' ' || *p == '\t') p++;
    size_t len = strlen(p);
    while (len && (p[len - 1] == ' ' || p[len - 1] == '\t')) len--;
    bool ok = false;
    for (int k = 0; k < n_keys; k++)
        ok |= tkr_auth_equal(p, len, keys[k], strlen(keys[k]));
    return ok;
}
