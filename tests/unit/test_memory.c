/* test_memory.c - bounded activation memory (issue 7, item 5) on the m4 GGUF fixture (llama.cpp's
 * F32 text model, Q8_0 mmproj), through the public API:
 *   - row chunks: budgets that cut the decoder's rows (queries included) and the vision tower's
 *     patches into chunks that cross sequence boundaries give the same bits as the default
 *     (one chunk), for a batch of a long text, short texts, an image and text+image;
 *   - releasing the vision tower's pages after each image pass (opt-in) gives the same bits
 *     as keeping them, on the first image and on the next ones (pages mapped again), and with
 *     weights read into memory (use_mmap off: the release must then do nothing); on Linux the
 *     mmproj mapping's resident size shows the pages did go;
 *   - the hint that no image item follows (tkr_model_hint_no_more_images, what the one-shot CLI
 *     sets) drops the pages once a call's vision passes are done: the same bits as keeping them,
 *     the pages gone after the call, and a later call with images (pages read back from the file)
 *     still gives the same bits; a text-only call leaves resident pages alone. */
#include "test.h"
#include "tkr_embed.h"

#define G "tests/fixtures/gguf/"

static tkr_model *load(size_t scratch, bool release, bool mmap) {
    tkr_model_params p = tkr_model_default_params();
    p.mmproj = G "mmproj-m4-q8_0.gguf";
    p.n_threads = 2;
    if (scratch) p.max_scratch_bytes = scratch;
    p.release_vision_weights = release;
    p.use_mmap = mmap;
    tkr_model *m = NULL;
    tkr_error e;
    if (tkr_model_load(G "m4-f32.gguf", &p, &m, &e) != TKR_OK) fprintf(stderr, "  load: %s\n", e.message);
    return m;
}

enum { N_ITEMS = 5, DIM_MAX = 64 };

/* Embeds the fixed batch into out [N_ITEMS, dim]; 0 on any failure. tokens: the long text's count. */
static int embed_batch(tkr_model *m, float *out, int *tokens) {
    static char long_text[8192];
    if (!long_text[0])
        for (int i = 0; i < 40; i++)
            strcat(long_text, "The quick brown fox jumps over the lazy dog, again and again; ");
    char path[4096];
    snprintf(path, sizeof path, "%s/images/photos/skimage-chelsea.png", test_data_dir());
    tkr_image_input img;
    memset(&img, 0, sizeof img);
    img.path = path;
    tkr_item it[N_ITEMS];
    for (int i = 0; i < N_ITEMS; i++) it[i] = tkr_item_default();
    it[0].text = "short";
    it[1].text = long_text;
    it[2].images = &img;
    it[2].n_images = 1;
    it[3].text = "a cat:";
    it[3].images = &img;
    it[3].n_images = 1;
    it[4].text = "another short text, in the same batch";
    tkr_result r[N_ITEMS];
    tkr_error e;
    if (tkr_embed(m, it, N_ITEMS, out, r, &e) != TKR_OK) {
        fprintf(stderr, "  embed: %s\n", e.message);
        return 0;
    }
    for (int i = 0; i < N_ITEMS; i++)
        if (r[i].status != TKR_OK) {
            fprintf(stderr, "  item %d: %s\n", i, r[i].message);
            return 0;
        }
    *tokens = r[1].prompt_tokens;
    return 1;
}

static void test_row_chunks_same_bits(void) {
    /* m4: text hidden 8 (about 200 bytes of scratch a decoder row), vision embed 32 (about 600
     * bytes a patch): 2000 bytes is a few rows a chunk, 1 is one row (one merged patch group) */
    static const size_t budgets[] = {2000, 7777, 1};
    tkr_model *ref = load(0, true, true);
    CHECK(ref != NULL, "model loads");
    if (!ref) return;
    int dim = tkr_model_dim(ref), tokens = 0;
    CHECK(dim <= DIM_MAX, "dim %d", dim);
    float a[N_ITEMS * DIM_MAX], b[N_ITEMS * DIM_MAX];
    CHECK(embed_batch(ref, a, &tokens), "default budget");
    CHECK(tokens > 400, "the long text has %d tokens (want > 400)", tokens);
    for (size_t k = 0; k < sizeof budgets / sizeof budgets[0]; k++) {
        tkr_model *m = load(budgets[k], true, true);
        CHECK(m && embed_batch(m, b, &tokens), "budget %zu", budgets[k]);
        for (int i = 0; m && i < N_ITEMS; i++)
            CHECK(!memcmp(a + i * dim, b + i * dim, sizeof(float) * (size_t)dim),
                  "item %d differs with a %zu-byte scratch budget", i, budgets[k]);
        tkr_model_free(m);
    }
    tkr_model_free(ref);
}

#ifdef __linux__
/* Resident kB of this process's mappings of files whose path ends with name (/proc/self/smaps). */
static long mapping_rss_kb(const char *name) {
    FILE *f = fopen("/proc/self/smaps", "r");
    if (!f) return -1;
    char line[4096];
    int in = 0;
    long kb = 0;
    size_t nl = strlen(name);
    while (fgets(line, sizeof line, f)) {
        size_t l = strlen(line);
        while (l && (line[l - 1] == '\n' || line[l - 1] == ' ')) line[--l] = '\0';
        unsigned long lo, hi;
        if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2) { /* a mapping's header line */
            in = l >= nl && !strcmp(line + l - nl, name);
            continue;
        }
        long v;
        if (in && sscanf(line, "Rss: %ld kB", &v) == 1) kb += v;
    }
    fclose(f);
    return kb;
}
#endif

static void test_release_vision_pages(void) {
    tkr_model *keep = load(0, false, true);
    CHECK(keep != NULL, "model loads");
    if (!keep) return;
    int dim = tkr_model_dim(keep), tokens = 0;
    float a[N_ITEMS * DIM_MAX], b[N_ITEMS * DIM_MAX];
    CHECK(embed_batch(keep, a, &tokens), "vision pages kept");
#ifdef __linux__
    long kb_keep = mapping_rss_kb("mmproj-m4-q8_0.gguf");
#endif
    tkr_model_free(keep);
    /* released after each pass: the first batch, then again with every page gone */
    tkr_model *rel = load(0, true, true);
    CHECK(rel != NULL, "model loads");
    for (int round = 0; rel && round < 2; round++) {
        memset(b, 0, sizeof b);
        CHECK(embed_batch(rel, b, &tokens), "released, round %d", round);
        CHECK(!memcmp(a, b, sizeof(float) * (size_t)N_ITEMS * dim),
              "releasing the vision pages changed a vector (round %d)", round);
    }
#ifdef __linux__
    long kb_rel = mapping_rss_kb("mmproj-m4-q8_0.gguf");
    CHECK(kb_keep > 0 && kb_rel >= 0 && kb_rel < kb_keep,
          "the mmproj mapping stays resident: %ld kB released vs %ld kB kept", kb_rel, kb_keep);
#endif
    tkr_model_free(rel);
    /* weights read into memory: nothing may be dropped (it would read back zeros) */
    tkr_model *heap = load(0, true, false);
    CHECK(heap != NULL, "model loads without mmap");
    for (int round = 0; heap && round < 2; round++) {
        memset(b, 0, sizeof b);
        CHECK(embed_batch(heap, b, &tokens), "heap weights, round %d", round);
        CHECK(!memcmp(a, b, sizeof(float) * (size_t)N_ITEMS * dim),
              "heap weights with release on changed a vector (round %d)", round);
    }
    tkr_model_free(heap);
}

/* Embeds one text-only item into out [dim]; 0 on failure. */
static int embed_text(tkr_model *m, float *out) {
    tkr_item it = tkr_item_default();
    it.text = "no image here";
    tkr_result r;
    tkr_error e;
    return tkr_embed(m, &it, 1, out, &r, &e) == TKR_OK && r.status == TKR_OK;
}

static void test_hint_no_more_images(void) {
    tkr_model *keep = load(0, false, true);
    CHECK(keep != NULL, "model loads");
    if (!keep) return;
    int dim = tkr_model_dim(keep), tokens = 0;
    float a[N_ITEMS * DIM_MAX], b[N_ITEMS * DIM_MAX], ta[DIM_MAX], tb[DIM_MAX];
    CHECK(embed_batch(keep, a, &tokens), "vision pages kept");
    CHECK(embed_text(keep, ta), "text kept");
#ifdef __linux__
    long kb_keep = mapping_rss_kb("mmproj-m4-q8_0.gguf");
    CHECK(kb_keep > 0, "the kept mmproj mapping is resident (%ld kB)", kb_keep);
#endif
    tkr_model_free(keep);
    tkr_model *m = load(0, false, true);
    CHECK(m != NULL, "model loads");
    if (!m) return;
    tkr_model_hint_no_more_images(m, true);
    /* round 0: the hint's own call; round 1: an image after all, pages read back */
    for (int round = 0; round < 2; round++) {
        memset(b, 0, sizeof b);
        CHECK(embed_batch(m, b, &tokens), "hinted, round %d", round);
        CHECK(!memcmp(a, b, sizeof(float) * (size_t)N_ITEMS * dim),
              "the hint changed a vector (round %d)", round);
#ifdef __linux__
        long kb = mapping_rss_kb("mmproj-m4-q8_0.gguf");
        CHECK(kb >= 0 && kb < kb_keep, "round %d: the mmproj mapping stays resident after the "
              "call's vision passes: %ld kB hinted vs %ld kB kept", round, kb, kb_keep);
#endif
    }
    tkr_model_free(m);
    /* a text-only call does not touch the tower's pages: kept resident when they are */
    m = load(0, false, true);
    CHECK(m && embed_batch(m, b, &tokens), "model loads and embeds");
    if (!m) return;
    tkr_model_hint_no_more_images(m, true);
    CHECK(embed_text(m, tb), "text after the hint");
    CHECK(!memcmp(ta, tb, sizeof(float) * (size_t)dim), "the hint changed a text vector");
#ifdef __linux__
    long kb_text = mapping_rss_kb("mmproj-m4-q8_0.gguf");
    CHECK(kb_text == kb_keep, "a text-only call dropped vision pages: %ld kB vs %ld kB", kb_text,
          kb_keep);
#endif
    /* back off: an image call keeps the pages again */
    tkr_model_hint_no_more_images(m, false);
    CHECK(embed_batch(m, b, &tokens), "hint cleared");
    CHECK(!memcmp(a, b, sizeof(float) * (size_t)N_ITEMS * dim), "vectors after the hint is cleared");
#ifdef __linux__
    long kb_back = mapping_rss_kb("mmproj-m4-q8_0.gguf");
    CHECK(kb_back == kb_keep, "with the hint cleared the pages stay: %ld kB vs %ld kB", kb_back,
          kb_keep);
#endif
    tkr_model_free(m);
}

int main(void) {
    RUN(test_row_chunks_same_bits);
    RUN(test_release_vision_pages);
    RUN(test_hint_no_more_images);
    return test_summary();
}
