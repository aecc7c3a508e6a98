/* cli_util.c - small helpers shared by the sub-commands. */
#include "cli/cli.h"

#include <errno.h>
#include <stdlib.h>

int tkr_cli_parse_int(const char *opt, const char *s, long lo, long hi, long *out) {
    if (!s) {
        fprintf(stderr, "tkr-embed: %s needs a value\n", opt);
        return 0;
    }
    char *end = NULL;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) {
        fprintf(stderr, "tkr-embed: %s must be an integer in [%ld, %ld], got '%s'\n", opt, lo, hi, s);
        return 0;
    }
    *out = v;
    return 1;
}

void tkr_cli_print_floats(FILE *f, const float *v, int n) {
    fputc('[', f);
    for (int i = 0; i < n; i++) fprintf(f, i ? ",%.9g" : "%.9g", (double)v[i]);
    fputc(']', f);
}
