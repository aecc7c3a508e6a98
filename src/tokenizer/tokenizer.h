/* tokenizer.h - the Qwen2 byte-level BPE tokenizer, internal interface.
 *
 * The public half (tkr_tokenizer_load/free, tkr_tokenize, tkr_tokenizer_vocab_size) is in
 * tkr_embed.h; this header adds what the model and the CLI need to build prompts piece by piece
 * and to look tokens up.
 *
 * Pipeline of one tokenize call, as HF tokenizers (Qwen2 fast tokenizer) does it:
 *   1. Invalid UTF-8 is replaced: every maximal invalid subsequence (the Unicode / WHATWG
 *      "maximal subpart" rule, the same as Python's bytes.decode("utf-8", "replace")) becomes
 *      one U+FFFD. Embedded NUL bytes are ordinary text (U+0000).
 *   2. Added tokens with normalized=false (all 14 Qwen2-VL specials) are matched literally in
 *      that text: leftmost, then longest, non-overlapping; lstrip/rstrip/single_word honoured.
 *   3. Each remaining segment is NFC-normalised (utf8proc) when the tokenizer has an NFC
 *      normalizer; added tokens with normalized=true are then matched in the normalised text.
 *   4. The Qwen2 pre-tokenizer regex splits each segment into words (hand-written matcher).
 *   5. Each word is byte-level BPE encoded: bytes -> single-byte tokens, then merges applied
 *      lowest rank first (leftmost among equal ranks) until none applies.
 * No BOS/EOS or template is added. A tokenizer is immutable after loading: every call uses
 * per-call scratch only, so any number of threads may tokenize with one tokenizer at once.
 */
#ifndef TKR_TOKENIZER_TOKENIZER_H
#define TKR_TOKENIZER_TOKENIZER_H

#include "tkr_embed.h"
#include <stddef.h>
#include <stdint.h>

/* Limits on what a tokenizer directory may contain. Every size read from a file is checked
 * against these before it is used. */
typedef struct {
    size_t max_file_bytes;   /* any one tokenizer file (tokenizer.json, vocab.json...)  64 MiB */
    int32_t max_ids;         /* ids must be in [0, max_ids)                              1<<24  */
    size_t max_token_bytes;  /* one vocabulary / added token string                      4096   */
    int32_t max_added;       /* number of added tokens                                   8192   */
} tkr_tokenizer_limits;

tkr_tokenizer_limits tkr_tokenizer_default_limits(void);

/* tkr_tokenizer_load with explicit limits (limits NULL = defaults). */
tkr_status tkr_tokenizer_load_ex(const char *model_dir, const tkr_tokenizer_limits *limits,
                                 tkr_tokenizer **out, tkr_error *err);

/* The files of a tokenizer directory held in memory; data NULL = the file is absent. The bytes
 * are only read during the call and need no terminating NUL. */
typedef struct {
    const char *tokenizer_json;    size_t tokenizer_json_len;
    const char *vocab_json;        size_t vocab_json_len;
    const char *merges_txt;        size_t merges_txt_len;
    const char *config_json;       size_t config_json_len;        /* tokenizer_config.json */
    const char *added_tokens_json; size_t added_tokens_json_len;
} tkr_tokenizer_files;

/* tkr_tokenizer_load_ex on those buffers: the same code, rules, limits and messages, with label
 * standing for the directory ("label/tokenizer.json: ..."; NULL = "(memory)"). The directory
 * loader reads the files and runs exactly this parser (the fuzzers use this entry). */
tkr_status tkr_tokenizer_load_memory(const tkr_tokenizer_files *files, const char *label,
                                     const tkr_tokenizer_limits *limits, tkr_tokenizer **out,
                                     tkr_error *err);

/* The id of a token given as a string: an added token's content ("<|image_pad|>"), else a
 * vocabulary entry in its file form (byte-level alphabet, e.g. "Ġhello" for " hello").
 * -1 if absent. */
int32_t tkr_tokenizer_token_id(const tkr_tokenizer *tok, const char *token_string);

/* The raw bytes a token stands for (an added token: its content). NULL if id is not a token.
 * The pointer stays valid as long as the tokenizer. */
const char *tkr_tokenizer_token_bytes(const tkr_tokenizer *tok, int32_t id, size_t *len);

/* Tokenizes text[0..len) and appends the ids to the growing array *ids (*n used, *cap
 * allocated; *ids may start NULL with *n = *cap = 0). The array is realloc'ed as needed and
 * stays valid and owned by the caller (free with tkr_free) even when this fails; on failure
 * *n is left as it was on entry. */
tkr_status tkr_tokenize_append(const tkr_tokenizer *tok, const char *text, size_t len,
                               int32_t **ids, size_t *n, size_t *cap, tkr_error *err);

/* ---- pieces exposed for tests -------------------------------------------------------------- */

/* Splits valid UTF-8 text[0..len) with the Qwen2 pre-tokenizer regex. Calls emit(ctx, start,
 * end) for each piece in order (byte offsets); stops and returns the first nonzero value emit
 * returns. */
int tkr_qwen2_pretokenize(const char *text, size_t len,
                          int (*emit)(void *ctx, size_t start, size_t end), void *ctx);

/* Replaces each maximal invalid UTF-8 subsequence of text[0..len) by U+FFFD. Returns NULL in
 * *out when the text is already valid (nothing allocated); else *out is malloc'ed. */
tkr_status tkr_utf8_sanitize(const char *text, size_t len, char **out, size_t *out_len,
                             tkr_error *err);

/* ---- GGUF (tok_gguf.c) --------------------------------------------------------------------- */

struct tkr_gguf;
/* The tokenizer of a GGUF's metadata (tokenizer.ggml.model "gpt2", pre "qwen2", tokens,
 * token_type, merges), giving the same ids as the Hugging Face files it was converted from:
 * normal tokens are the BPE vocabulary, control tokens added special tokens, user-defined ones
 * added normal tokens, unused ones ("[PAD<id>]") no token. limits NULL = defaults. */
tkr_status tkr_tokenizer_from_gguf(const struct tkr_gguf *g, const tkr_tokenizer_limits *limits,
                                   tkr_tokenizer **out, tkr_error *err);

/* A tokenizer as GGUF arrays (llama.cpp's converter layout): tokens[i] is id i in the byte-level
 * alphabet (added tokens verbatim), types[i] 1 normal / 3 control / 4 user-defined / 5 unused
 * ("[PAD<i>]" for ids that name no token), merges "a b" in rank order. */
typedef struct {
    char **tokens;       /* [n_tokens] */
    int32_t *types;      /* [n_tokens] */
    size_t n_tokens;
    char **merges;       /* [n_merges] */
    size_t n_merges;
} tkr_tok_export;

/* Exports ids [0, max(n_ids, the tokenizer's id count)). Free with tkr_tokenizer_export_free. */
tkr_status tkr_tokenizer_export(const tkr_tokenizer *tok, int32_t n_ids, tkr_tok_export *out,
                                tkr_error *err);
void tkr_tokenizer_export_free(tkr_tok_export *e);

#endif
