/* auth.h - API-key checks for the HTTP server: "Authorization: Bearer <key>" against the
 * configured keys, compared in constant time (redis acl.c style) so that response timing does
 * not reveal how much of a guess was right. */
#ifndef TKR_SERVER_AUTH_H
#define TKR_SERVER_AUTH_H

#include <stdbool.h>
#include <stddef.h>

/* Compares a guess with a secret in time that depends only on the secret's length: every byte
 * of the secret is always visited and no branch depends on the data. */
bool tkr_auth_equal(const char *guess, size_t guess_len, const char *secret, size_t secret_len);

/* Checks an Authorization header value (NULL when absent) against keys[0..n_keys). With no
 * keys configured every request passes. Every key is compared (no early exit), so the time does
 * not reveal which key matched. The scheme "Bearer" is matched case-insensitively. */
bool tkr_auth_check(const char *authorization, char *const *keys, int n_keys);

#endif
