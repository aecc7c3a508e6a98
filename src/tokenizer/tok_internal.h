/* tok_internal.h - the tokenizer's data structures, shared by the files of src/tokenizer/ only.
 *
 * Vocabulary entries are stored as the raw bytes they stand for (the GPT-2 byte-level alphabet
 * of the files is undone at load time), so BPE works on bytes and ids and never builds mapped
 * strings. Merges are a hash map from an (left id, right id) pair to (rank, merged id). */
#ifndef TKR_TOKENIZER_INTERNAL_H
#define TKR_TOKENIZER_INTERNAL_H

#include "tokenizer/tokenizer.h"
#include <stdint.h>
#include <stddef.h>

/* An added token (special or not), matched literally in the text before BPE. */
typedef struct {
    char *content;        /* UTF-8 as written in the file (NFC'd when normalized)       */
    size_t len;
    int32_t id;
    uint8_t special;      /* skipped when the tokenizer splits special tokens            */
    uint8_t lstrip;       /* eats whitespace on its left                                 */
    uint8_t rstrip;       /* eats whitespace on its right                                */
    uint8_t single_word;  /* only matches when not inside a word                         */
    uint8_t normalized;   /* matched in the normalised text instead of the raw text      */
} tok_added;

/* Open-addressing map from a byte string (a vocabulary entry) to its id. */
typedef struct {
    int32_t *slots;       /* [cap] id or -1                                              */
    uint32_t *hashes;     /* [cap] hash of the key in that slot                          */
    size_t cap;           /* power of two                                                */
} tok_strmap;

/* One merge: the pair (left, right) becomes merged, with priority rank (lower first). */
typedef struct {
    uint64_t key;         /* (uint64)left << 32 | right; UINT64_MAX = empty              */
    uint32_t rank;
    int32_t merged;
} tok_merge;

typedef struct {
    tok_merge *slots;     /* [cap]                                                       */
    size_t cap;           /* power of two                                                */
    size_t count;
} tok_mergemap;

struct tkr_tokenizer {
    /* Vocabulary: token id -> raw bytes (arena + offsets), bytes -> id (map). */
    char *arena;          /* [arena_len] all token bytes, back to back                   */
    size_t arena_len;
    uint32_t *tok_off;    /* [n_ids] offset in arena; UINT32_MAX = no vocab entry        */
    uint32_t *tok_len;    /* [n_ids]                                                     */
    int32_t n_ids;        /* max id + 1 over vocabulary and added tokens                 */
    int32_t n_vocab;      /* number of vocabulary (model) entries                        */
    tok_strmap vocab;
    /* Vocabulary entries not written in the byte-level alphabet (rare): file form -> id. */
    char **odd_str;       /* [n_odd]                                                     */
    int32_t *odd_id;      /* [n_odd]                                                     */
    int32_t n_odd;

    tok_mergemap merges;
    int32_t byte_id[256]; /* the single-byte token of each byte value                   */

    tok_added *added;     /* [n_added]                                                   */
    int32_t n_added;
    int32_t *added_by_id; /* [n_ids] index into added, or -1                             */
    uint8_t raw_first[256];   /* 1 if some raw-matched added token starts with this byte  */
    uint8_t norm_first[256];  /* same for normalized added tokens                          */
    int has_raw_added, has_norm_added;

    int nfc;              /* the normalizer is NFC (else none)                           */
    int ignore_merges;    /* a word found whole in the vocabulary skips BPE              */
    int split_special;    /* split_special_tokens: special tokens are not matched        */
};

/* ---- tok_bpe.c ---- */
uint32_t tok_hash_bytes(const char *s, size_t len);
tkr_status tok_strmap_init(tok_strmap *m, size_t n_keys);
void tok_strmap_free(tok_strmap *m);
/* Inserts id under the bytes already stored for id in tok (tok_off/tok_len). Returns the id
 * already there for the same bytes, or -1 if inserted. */
int32_t tok_strmap_insert(tkr_tokenizer *tok, int32_t id);
int32_t tok_strmap_find(const tkr_tokenizer *tok, const char *s, size_t len);

tkr_status tok_mergemap_init(tok_mergemap *m, size_t n_merges);
void tok_mergemap_free(tok_mergemap *m);
/* Adds a merge unless the pair is already there (the first, lowest rank, wins). */
void tok_mergemap_add(tok_mergemap *m, int32_t left, int32_t right, uint32_t rank, int32_t merged);
const tok_merge *tok_mergemap_find(const tok_mergemap *m, int32_t left, int32_t right);

/* Per-call scratch for BPE (grown as needed, freed by the caller). */
typedef struct {
    int32_t *sym;         /* [cap] symbol id at each start byte, -1 once merged away     */
    int32_t *next;        /* [cap] index of the next live symbol, -1 at the end          */
    int32_t *prev;        /* [cap] index of the previous live symbol, -1 at the start    */
    void *heap;           /* [heap_cap] candidate merges                                 */
    size_t cap, heap_cap;
} tok_bpe_scratch;

void tok_bpe_scratch_free(tok_bpe_scratch *s);

/* BPE-encodes one pre-tokenized word (raw bytes) and appends its ids. */
tkr_status tok_bpe_word(const tkr_tokenizer *tok, const char *word, size_t len,
                        tok_bpe_scratch *scratch, int32_t **ids, size_t *n, size_t *cap,
                        tkr_error *err);

/* Appends one id to a growing array (doubling). */
tkr_status tok_push_id(int32_t **ids, size_t *n, size_t *cap, int32_t id, tkr_error *err);

/* ---- tok_text.c ---- */
/* NFC of valid UTF-8 s[0..len). *out is NULL when s is already NFC (a fast check), else
 * malloc'ed. */
tkr_status tok_nfc(const char *s, size_t len, char **out, size_t *out_len, tkr_error *err);
/* Decodes one code point of valid UTF-8 at s[0..len) (len >= 1); returns its byte length. */
size_t tok_utf8_decode(const unsigned char *s, size_t len, uint32_t *cp);
int tok_is_white_space(uint32_t cp);   /* Unicode White_Space (Rust char::is_whitespace) */
int tok_is_alnum(uint32_t cp);         /* letters L* and numbers N*                      */
/* 1 if cp is NFC alone, has combining class 0 and never composes with what precedes it. */
int tok_nfc_inert(uint32_t cp);

/* ---- tok_load.c ---- */
/* The GPT-2 bytes_to_unicode table: byte -> code point, and code point -> byte (-1). */
uint32_t tok_byte_to_cp(uint8_t b);
int tok_cp_to_byte(uint32_t cp);

/* ---- tok_load.c: the builder, shared by the HF-file and the GGUF loaders ---- */
typedef struct {
    tkr_tokenizer *tok;
    tkr_tokenizer_limits lim;
    char *tmp;            /* [2 * max_token_bytes] scratch for decoding merge parts     */
    size_t arena_cap;
    /* vocabulary staging: one entry per file entry, in file order */
    int32_t *v_id;        /* [v_n]                                                       */
    uint32_t *v_off;      /* [v_n] arena offset, UINT32_MAX for an odd entry             */
    uint32_t *v_len;      /* [v_n]                                                       */
    size_t v_n;
} tok_builder;

/* Entry k of a vocabulary: its file-form string s[0..len) (byte-level alphabet) and id. */
typedef tkr_status (*tok_entry_fn)(void *ctx, size_t k, const char **s, size_t *len, int64_t *id,
                                   tkr_error *err);
tkr_status tok_read_vocab_entries(tok_builder *b, size_t n, tok_entry_fn get, void *ctx,
                                  const char *what, tkr_error *err);
/* Merge number rank: "a" + "b" in file form. where names it in errors. */
tkr_status tok_add_merge(tok_builder *b, const char *a, size_t alen, const char *bb, size_t blen,
                         size_t rank, const char *where, tkr_error *err);
tkr_status tok_add_added(tok_builder *b, const char *content, size_t len, int64_t id, int special,
                         int lstrip, int rstrip, int single_word, int normalized,
                         const char *what, tkr_error *err);
tkr_status tok_grow_ids(tkr_tokenizer *tok, int32_t n_ids, tkr_error *err);
/* Sets the first-byte tables of the added-token matcher (after the last tok_add_added). */
void tok_index_added(tkr_tokenizer *tok);

#endif
