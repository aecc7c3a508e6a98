/* test_base64.c - RFC 4648 vectors, whitespace, padding and rejection of bad input. */
#include "test.h"
#include "util/base64.h"

static void test_rfc4648_vectors(void) {
    const char *in[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    const char *want[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
    for (int i = 0; i < 7; i++) {
        size_t n = strlen(in[i]);
        char buf[64];
        CHECK(tkr_base64_encoded_size(n) == strlen(want[i]) + 1, "size %d", i);
        tkr_base64_encode((const uint8_t *)in[i], n, buf);
        CHECK(!strcmp(buf, want[i]), "encode '%s' -> '%s'", in[i], buf);
        uint8_t *out = NULL;
        size_t olen = 0;
        tkr_error e;
        CHECK(tkr_base64_decode(want[i], strlen(want[i]), 0, &out, &olen, &e) == TKR_OK, "decode");
        CHECK(olen == n && (n == 0 || !memcmp(out, in[i], n)), "roundtrip %d", i);
        free(out);
    }
}

static void test_whitespace_and_unpadded(void) {
    uint8_t *out = NULL;
    size_t n = 0;
    tkr_error e;
    CHECK(tkr_base64_decode("Zm9v\r\nYmFy", 10, 0, &out, &n, &e) == TKR_OK && n == 6 &&
              !memcmp(out, "foobar", 6), "line breaks skipped");
    free(out);
    CHECK(tkr_base64_decode("Zm9vYg", 6, 0, &out, &n, &e) == TKR_OK && n == 4 &&
              !memcmp(out, "foob", 4), "unpadded");
    free(out);
}

static void test_rejects_bad_input(void) {
    uint8_t *out = NULL;
    size_t n = 0;
    tkr_error e;
    CHECK(tkr_base64_decode("Zm9v!", 5, 0, &out, &n, &e) == TKR_ERR_INVALID_ARG, "bad char");
    CHECK(strstr(e.message, "offset 4") != NULL, "offset named: %s", e.message);
    CHECK(out == NULL, "no output on failure");
    CHECK(tkr_base64_decode("Z", 1, 0, &out, &n, &e) == TKR_ERR_INVALID_ARG, "truncated");
    CHECK(tkr_base64_decode("Zg==Zg", 6, 0, &out, &n, &e) == TKR_ERR_INVALID_ARG, "data after pad");
    CHECK(tkr_base64_decode("Zm9vYmFy", 8, 5, &out, &n, &e) == TKR_ERR_LIMIT, "cap");
    CHECK(tkr_base64_decode("Zm9vYmFy", 8, 6, &out, &n, &e) == TKR_OK && n == 6, "cap exact");
    free(out);
}

int main(void) {
    RUN(test_rfc4648_vectors);
    RUN(test_whitespace_and_unpadded);
    RUN(test_rejects_bad_input);
    return test_summary();
}
