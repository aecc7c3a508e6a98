#!/usr/bin/env bash
# make install into a temporary prefix: the binary runs, the man page, header, static and shared
# libraries and pkg-config file are there, and a small C program builds with
# `pkg-config --cflags --libs tkr-embed` (shared) and `--static` and tokenizes correctly with both.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
source "$ROOT/tests/lib/modeldir.sh"
require_data
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0
check() { if [ "$2" -eq 0 ]; then echo "ok   $1"; else echo "FAIL $1"; fails=$((fails+1)); fi; }

SANFLAGS=()
MAKEVARS=(BUILD="$TKR_BUILD")
if [ "$(basename "$TKR_BUILD")" = build-san ]; then
  SANFLAGS=(-fsanitize=address,undefined); MAKEVARS+=(SAN=1)
fi
P="$tmp/prefix"
make -C "$ROOT" -s "${MAKEVARS[@]}" install PREFIX="$P" >"$tmp/install.log" 2>&1
check "make install" $?
for f in bin/tkr-embed include/tkr_embed.h lib/libtkr-embed.a lib/libtkr-embed.so lib/libtkr-embed.so.0 \
         lib/pkgconfig/tkr-embed.pc share/man/man1/tkr-embed.1; do
  [ -e "$P/$f" ]; check "installed $f" $?
done
"$P/bin/tkr-embed" --version | grep -q '^kernels: '; check "installed binary --version" $?
readelf -d "$P/lib/libtkr-embed.so.0" 2>/dev/null | grep -q 'SONAME.*libtkr-embed.so.0'; check "soname" $?

# the program: Qwen2's ids for "Hello world" are 9707 and 1879
mkdir -p "$tmp/tok"
cp "$TKR_TEST_DATA/tokenizers/qwen2/vocab.json" "$TKR_TEST_DATA/tokenizers/qwen2/merges.txt" "$tmp/tok/"
cat > "$tmp/prog.c" <<'C'
#include <tkr_embed.h>
#include <stdio.h>
int main(int argc, char **argv) {
    tkr_tokenizer *t = NULL;
    tkr_error e;
    if (argc < 2 || tkr_tokenizer_load(argv[1], &t, &e) != TKR_OK) { fprintf(stderr, "load failed\n"); return 1; }
    int32_t *ids = NULL; size_t n = 0;
    int ok = tkr_tokenize(t, "Hello world", 11, &ids, &n, &e) == TKR_OK && n == 2 && ids[0] == 9707 && ids[1] == 1879;
    tkr_free(ids);
    tkr_tokenizer_free(t);
    puts(ok ? "ids ok" : "ids wrong");
    return ok ? 0 : 1;
}
C
export PKG_CONFIG_PATH="$P/lib/pkgconfig"
# shellcheck disable=SC2046
cc -std=c11 "${SANFLAGS[@]}" "$tmp/prog.c" -o "$tmp/prog" $(pkg-config --cflags --libs tkr-embed) 2>"$tmp/cc.log"
check "compile against the shared library with pkg-config" $?
LD_LIBRARY_PATH="$P/lib" "$tmp/prog" "$tmp/tok" >/dev/null; check "shared: program runs and tokenizes" $?
readelf -d "$tmp/prog" 2>/dev/null | grep -q 'NEEDED.*\[libtkr-embed.so.0\]'; check "shared: needs libtkr-embed.so.0 by soname" $?
# the static archive with its dependencies' shared libraries (the pc file's Requires.private)
deps=$(sed -n 's/^Requires.private: //p' "$P/lib/pkgconfig/tkr-embed.pc")
# shellcheck disable=SC2046,SC2086
cc -std=c11 "${SANFLAGS[@]}" "$tmp/prog.c" -o "$tmp/prog_static" $(pkg-config --cflags tkr-embed) \
  "$P/lib/libtkr-embed.a" $(pkg-config --libs $deps) -lpthread -lm 2>"$tmp/ccs.log"
check "compile against the static library (libtkr-embed.a)" $?
"$tmp/prog_static" "$tmp/tok" >/dev/null; check "static: program runs and tokenizes" $?
[ "$fails" -eq 0 ] || { cat "$tmp/install.log" "$tmp/cc.log" "$tmp/ccs.log" 2>/dev/null | tail -20; }
exit "$fails"
