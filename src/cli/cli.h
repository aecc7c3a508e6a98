/* cli.h - the sub-commands of the tkr-embed program. Each returns the process exit code. */
#ifndef TKR_CLI_H
#define TKR_CLI_H

int tkr_cmd_embed(int argc, char **argv);
int tkr_cmd_tokenize(int argc, char **argv);
int tkr_cmd_serve(int argc, char **argv);
int tkr_cmd_pull(int argc, char **argv);
int tkr_cmd_quantize(int argc, char **argv);
int tkr_cmd_render(int argc, char **argv);

/* Parses a decimal integer in [lo, hi]; prints an error naming the option and returns 0 on failure. */
int tkr_cli_parse_int(const char *opt, const char *s, long lo, long hi, long *out);

/* Prints a float array as a JSON array with round-trip precision. */
#include <stdio.h>
void tkr_cli_print_floats(FILE *f, const float *v, int n);

#endif
