/* tok_bpe.c - the vocabulary and merge hash maps, and byte-level BPE of one word.
 *
 * BPE follows HF tokenizers' word merge loop exactly: every adjacent pair that has a merge is
 * a candidate; the candidate with the lowest rank is applied, the leftmost one among equal
 * ranks; the new symbol's pairs with its neighbours become candidates; repeat until no
 * candidate is left. A binary heap of candidates keyed by (rank, position) plus a doubly linked
 * list of live symbols makes that O(n log n) per word, so a 100 kB "word" is no problem. */
#include "tokenizer/tok_internal.h"
#include "util/error.h"

#include <stdlib.h>
#include <string.h>

/* ---- hashing --------------------------------------------------------------------------------- */

/* FNV-1a: only used at load time and for tkr_tokenizer_token_id, never per input byte. */
uint32_t tok_hash_bytes(const char *s, size_t len) {
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)s[i];
        h *= 16777619u;
    }
    return h;
}

/* Fibonacci hashing of the 64-bit pair key: the high bits of the product are well mixed. */
static size_t pair_slot(uint64_t key, size_t cap) {
    uint64_t h = key * 0x9E3779B97F4A7C15ull;
    h ^= h >> 29;
    return (size_t)(h & (cap - 1));
}

/* Smallest power of two holding n keys at a load factor of at most 1/2. */
static size_t table_cap(size_t n) {
    size_t cap = 16;
    while (cap < n * 2 && cap < ((size_t)1 << 40)) cap <<= 1;
    return cap;
}

/* ---- string map ------------------------------------------------------------------------------ */

tkr_status tok_strmap_init(tok_strmap *m, size_t n_keys) {
    m->cap = table_cap(n_keys);
    m->slots = malloc(m->cap * sizeof *m->slots);
    m->hashes = malloc(m->cap * sizeof *m->hashes);
    if (!m->slots || !m->hashes) {
        tok_strmap_free(m);
        return TKR_ERR_NOMEM;
    }
    for (size_t i = 0; i < m->cap; i++) m->slots[i] = -1;
    return TKR_OK;
}

void tok_strmap_free(tok_strmap *m) {
    free(m->slots);
    free(m->hashes);
    m->slots = NULL;
    m->hashes = NULL;
    m->cap = 0;
}

int32_t tok_strmap_insert(tkr_tokenizer *tok, int32_t id) {
    tok_strmap *m = &tok->vocab;
    const char *s = tok->arena + tok->tok_off[id];
    size_t len = tok->tok_len[id];
    uint32_t h = tok_hash_bytes(s, len);
    size_t i = h & (m->cap - 1);
    while (m->slots[i] >= 0) {
        int32_t other = m->slots[i];
        if (m->hashes[i] == h && tok->tok_len[other] == len &&
            memcmp(tok->arena + tok->tok_off[other], s, len) == 0)
            return other;
        i = (i + 1) & (m->cap - 1);
    }
    m->slots[i] = id;
    m->hashes[i] = h;
    return -1;
}

int32_t tok_strmap_find(const tkr_tokenizer *tok, const char *s, size_t len) {
    const tok_strmap *m = &tok->vocab;
    if (!m->cap) return -1;
    uint32_t h = tok_hash_bytes(s, len);
    size_t i = h & (m->cap - 1);
    while (m->slots[i] >= 0) {
        int32_t id = m->slots[i];
        if (m->hashes[i] == h && tok->tok_len[id] == len &&
            memcmp(tok->arena + tok->tok_off[id], s, len) == 0)
            return id;
        i = (i + 1) & (m->cap - 1);
    }
    return -1;
}

/* ---- merge map ------------------------------------------------------------------------------- */

tkr_status tok_mergemap_init(tok_mergemap *m, size_t n_merges) {
    m->cap = table_cap(n_merges);
    m->count = 0;
    m->slots = malloc(m->cap * sizeof *m->slots);
    if (!m->slots) {
        m->cap = 0;
        return TKR_ERR_NOMEM;
    }
    for (size_t i = 0; i < m->cap; i++) m->slots[i].key = UINT64_MAX;
    return TKR_OK;
}

void tok_mergemap_free(tok_mergemap *m) {
    free(m->slots);
    m->slots = NULL;
    m->cap = m->count = 0;
}

void tok_mergemap_add(tok_mergemap *m, int32_t left, int32_t right, uint32_t rank, int32_t merged) {
    uint64_t key = (uint64_t)(uint32_t)left << 32 | (uint32_t)right;
    size_t i = pair_slot(key, m->cap);
    while (m->slots[i].key != UINT64_MAX) {
        if (m->slots[i].key == key) return; /* a duplicate pair: the first rank stays */
        i = (i + 1) & (m->cap - 1);
    }
    m->slots[i].key = key;
    m->slots[i].rank = rank;
    m->slots[i].merged = merged;
    m->count++;
}

const tok_merge *tok_mergemap_find(const tok_mergemap *m, int32_t left, int32_t right) {
    uint64_t key = (uint64_t)(uint32_t)left << 32 | (uint32_t)right;
    size_t i = pair_slot(key, m->cap);
    while (m->slots[i].key != UINT64_MAX) {
        if (m->slots[i].key == key) return &m->slots[i];
        i = (i + 1) & (m->cap - 1);
    }
    return NULL;
}

/* ---- id arrays ------------------------------------------------------------------------------- */

tkr_status tok_push_id(int32_t **ids, size_t *n, size_t *cap, int32_t id, tkr_error *err) {
    if (*n == *cap) {
        size_t ncap = *cap ? *cap * 2 : 64;
        size_t bytes;
        if (ncap < *cap || !tkr_mul_size(ncap, sizeof **ids, &bytes))
            return tkr_fail(err, TKR_ERR_LIMIT, "token array too large");
        int32_t *p = realloc(*ids, bytes);
        if (!p) return tkr_fail(err, TKR_ERR_NOMEM, "out of memory growing the token array");
        *ids = p;
        *cap = ncap;
    }
    (*ids)[(*n)++] = id;
    return TKR_OK;
}

/* ---- BPE of one word ------------------------------------------------------------------------- */

/* A candidate merge of the symbol at pos with its right neighbour; left/right are the ids it
 * was made for, so a candidate whose symbols have changed since is recognised and dropped. */
typedef struct {
    uint32_t rank;
    int32_t pos;
    int32_t left, right, merged;
} bpe_cand;

static int cand_less(const bpe_cand *a, const bpe_cand *b) {
    return a->rank < b->rank || (a->rank == b->rank && a->pos < b->pos);
}

static void heap_push(bpe_cand *h, size_t *n, bpe_cand c) {
    size_t i = (*n)++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!cand_less(&c, &h[parent])) break;
        h[i] = h[parent];
        i = parent;
    }
    h[i] = c;
}

static bpe_cand heap_pop(bpe_cand *h, size_t *n) {
    bpe_cand top = h[0];
    bpe_cand last = h[--(*n)];
    size_t i = 0, count = *n;
    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= count) break;
        if (child + 1 < count && cand_less(&h[child + 1], &h[child])) child++;
        if (!cand_less(&h[child], &last)) break;
        h[i] = h[child];
        i = child;
    }
    if (count) h[i] = last;
    return top;
}

/* Grows the scratch so a word of len bytes fits: symbols and at most one live candidate per
 * pair at any time, plus the stale ones (each merge adds at most two, so 3 * len bounds it). */
static tkr_status scratch_reserve(tok_bpe_scratch *s, size_t len, tkr_error *err) {
    if (len <= s->cap) return TKR_OK;
    size_t ncap = s->cap ? s->cap : 64;
    while (ncap < len) ncap *= 2;
    size_t heap_n, b1, b2;
    if (ncap > (size_t)INT32_MAX || !tkr_mul_size(ncap, 3, &heap_n) ||
        !tkr_mul_size(ncap, sizeof(int32_t), &b1) || !tkr_mul_size(heap_n, sizeof(bpe_cand), &b2))
        return tkr_fail(err, TKR_ERR_LIMIT, "word of %zu bytes is too long to tokenize", len);
    int32_t *sym = realloc(s->sym, b1);
    if (sym) s->sym = sym;
    int32_t *next = realloc(s->next, b1);
    if (next) s->next = next;
    int32_t *prev = realloc(s->prev, b1);
    if (prev) s->prev = prev;
    void *heap = realloc(s->heap, b2);
    if (heap) s->heap = heap;
    if (!sym || !next || !prev || !heap)
        return tkr_fail(err, TKR_ERR_NOMEM, "out of memory for a word of %zu bytes", len);
    s->cap = ncap;
    s->heap_cap = heap_n;
    return TKR_OK;
}

void tok_bpe_scratch_free(tok_bpe_scratch *s) {
    free(s->sym);
    free(s->next);
    free(s->prev);
    free(s->heap);
    memset(s, 0, sizeof *s);
}

/* Pushes the candidate merge of the live symbol at pos with its right neighbour, if any. */
static void push_pair(const tkr_tokenizer *tok, tok_bpe_scratch *s, size_t *hn, int32_t pos) {
    int32_t nx = s->next[pos];
    if (pos < 0 || nx < 0) return;
    const tok_merge *m = tok_mergemap_find(&tok->merges, s->sym[pos], s->sym[nx]);
    if (!m) return;
    bpe_cand c = {m->rank, pos, s->sym[pos], s->sym[nx], m->merged};
    heap_push((bpe_cand *)s->heap, hn, c);
}

tkr_status tok_bpe_word(const tkr_tokenizer *tok, const char *word, size_t len,
                        tok_bpe_scratch *scratch, int32_t **ids, size_t *n, size_t *cap,
                        tkr_error *err) {
    if (len == 0) return TKR_OK;
    const unsigned char *w = (const unsigned char *)word;
    if (len == 1) return tok_push_id(ids, n, cap, tok->byte_id[w[0]], err);
    if (tok->ignore_merges) {
        int32_t whole = tok_strmap_find(tok, word, len);
        if (whole >= 0) return tok_push_id(ids, n, cap, whole, err);
    }
    tkr_status st = scratch_reserve(scratch, len, err);
    if (st != TKR_OK) return st;
    tok_bpe_scratch *s = scratch;
    int32_t nl = (int32_t)len;
    for (int32_t i = 0; i < nl; i++) {
        s->sym[i] = tok->byte_id[w[i]];
        s->prev[i] = i - 1;
        s->next[i] = i + 1 < nl ? i + 1 : -1;
    }
    size_t hn = 0;
    for (int32_t i = 0; i + 1 < nl; i++) push_pair(tok, s, &hn, i);
    bpe_cand *heap = (bpe_cand *)s->heap;
    while (hn > 0) {
        bpe_cand c = heap_pop(heap, &hn);
        int32_t right = s->next[c.pos];
        /* Stale: the left symbol was merged into its neighbour, or either side changed. */
        if (s->sym[c.pos] != c.left || right < 0 || s->sym[right] != c.right) continue;
        s->sym[c.pos] = c.merged;
        s->sym[right] = -1;
        int32_t after = s->next[right];
        s->next[c.pos] = after;
        if (after >= 0) s->prev[after] = c.pos;
        if (s->prev[c.pos] >= 0) push_pair(tok, s, &hn, s->prev[c.pos]);
        push_pair(tok, s, &hn, c.pos);
    }
    for (int32_t i = 0; i >= 0; i = s->next[i]) {
        st = tok_push_id(ids, n, cap, s->sym[i], err);
        if (st != TKR_OK) return st;
    }
    return TKR_OK;
}
