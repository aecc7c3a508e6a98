/* test_model.c - the embedding API on the fixture model m1 (assembled by tests/lib/modeldir.sh
 * into $TKR_MODEL_M1, which tests/run.sh exports): batch invariance (bit for bit), per-item
 * errors that leave the other items intact, limits, token-id input and bad arguments. */
#include "test.h"
#include "tkr_embed.h"

#include <pthread.h>

static tkr_model *load_m1(tkr_model_params *mp) {
    const char *dir = getenv("TKR_MODEL_M1");
    if (!dir) {
        fprintf(stderr, "FATAL: TKR_MODEL_M1 is not set (tests/run.sh assembles the fixture model)\n");
        return NULL;
    }
    tkr_model *m = NULL;
    tkr_error e;
    if (tkr_model_load(dir, mp, &m, &e) != TKR_OK) {
        fprintf(stderr, "load: %s\n", e.message);
        return NULL;
    }
    return m;
}

static void test_batch_invariance(void) {
    tkr_model_params mp = tkr_model_default_params();
    mp.n_threads = 2;
    tkr_model *m = load_m1(&mp);
    CHECK(m != NULL, "model loads");
    if (!m) return;
    int D = tkr_model_dim(m);
    const char *texts[] = {"alpha", "a much longer text with several words in it, and punctuation!",
                           "", "日本語", "beta beta beta beta"};
    enum { N = 5 };
    tkr_item items[N];
    for (int i = 0; i < N; i++) {
        items[i] = tkr_item_default();
        items[i].text = texts[i];
    }
    float all[N * 64], one[64];
    tkr_result res[N], r1;
    tkr_error e;
    CHECK(tkr_embed(m, items, N, all, res, &e) == TKR_OK, "batch: %s", e.message);
    for (int i = 0; i < N; i++) {
        CHECK(res[i].status == TKR_OK, "item %d: %s", i, res[i].message);
        CHECK(tkr_embed(m, &items[i], 1, one, &r1, &e) == TKR_OK && r1.status == TKR_OK, "alone %d", i);
        CHECK(!memcmp(one, all + i * D, sizeof(float) * (size_t)D), "item %d differs alone vs batched", i);
        CHECK(r1.prompt_tokens == res[i].prompt_tokens, "tokens %d", i);
    }
    tkr_model_free(m);
}

/* max_scratch_bytes only sets how many rows the norms, projections and MLPs take at a time
 * (text and vision): a 1-byte budget (one row a chunk, one merged patch group in the vision
 * tower) must give the same bits as the default, for a batch of texts and a text+image item. */
static void test_chunked_scratch(void) {
    tkr_model_params mp = tkr_model_default_params();
    mp.n_threads = 2;
    tkr_model *big = load_m1(&mp);
    mp.max_scratch_bytes = 1;
    tkr_model *tiny = load_m1(&mp);
    CHECK(big && tiny, "models load");
    if (!big || !tiny) {
        tkr_model_free(big);
        tkr_model_free(tiny);
        return;
    }
    int D = tkr_model_dim(big);
    char img_path[1024];
    snprintf(img_path, sizeof img_path, "%s/images/photos/wuffs-hat.jpeg", test_data_dir());
    tkr_image_input img = {.path = img_path};
    const char *texts[] = {"alpha", "a much longer text with several words in it, and punctuation!",
                           "beta beta beta beta", "an image:"};
    enum { N = 4 };
    tkr_item items[N];
    for (int i = 0; i < N; i++) {
        items[i] = tkr_item_default();
        items[i].text = texts[i];
    }
    items[3].images = &img;
    items[3].n_images = 1;
    float a[N * 64], b[N * 64];
    tkr_result ra[N], rb[N];
    tkr_error e;
    CHECK(D <= 64, "dim %d", D);
    CHECK(tkr_embed(big, items, N, a, ra, &e) == TKR_OK, "default budget: %s", e.message);
    CHECK(tkr_embed(tiny, items, N, b, rb, &e) == TKR_OK, "tiny budget: %s", e.message);
    for (int i = 0; i < N; i++) {
        CHECK(ra[i].status == TKR_OK && rb[i].status == TKR_OK, "item %d: %s / %s", i, ra[i].message,
              rb[i].message);
        CHECK(!memcmp(a + i * D, b + i * D, sizeof(float) * (size_t)D), "item %d differs chunked", i);
    }
    CHECK(ra[3].prompt_tokens > 20, "the image item has image tokens (%d)", ra[3].prompt_tokens);
    mp.max_scratch_bytes = 0;
    tkr_model *bad = NULL;
    CHECK(tkr_model_load(getenv("TKR_MODEL_M1"), &mp, &bad, &e) == TKR_ERR_INVALID_ARG && !bad,
          "a zero budget is refused");
    tkr_model_free(big);
    tkr_model_free(tiny);
}

static void test_item_errors_are_isolated(void) {
    tkr_model *m = load_m1(NULL);
    CHECK(m != NULL, "model loads");
    if (!m) return;
    int D = tkr_model_dim(m);
    tkr_image_input bad_img = {.path = "/nonexistent/image.png"};
    static const uint8_t junk[] = "not an image at all";
    tkr_image_input junk_img = {.data = junk, .size = sizeof junk};
    int32_t bad_ids[] = {1, 2, 999999999};
    tkr_item items[5];
    for (int i = 0; i < 5; i++) items[i] = tkr_item_default();
    items[0].text = "good one";
    items[1].text = "x";
    items[1].images = &bad_img;
    items[1].n_images = 1;
    items[2].text = "y";
    items[2].images = &junk_img;
    items[2].n_images = 1;
    items[3].token_ids = bad_ids;
    items[3].n_token_ids = 3;
    items[4].text = "good two";
    float out[5 * 64];
    tkr_result res[5];
    tkr_error e;
    CHECK(tkr_embed(m, items, 5, out, res, &e) == TKR_OK, "call ok: %s", e.message);
    CHECK(res[0].status == TKR_OK && res[4].status == TKR_OK, "good items embedded");
    CHECK(res[1].status == TKR_ERR_IO && strstr(res[1].message, "image 0"), "missing file: %d %s",
          res[1].status, res[1].message);
    CHECK(res[2].status != TKR_OK && res[2].message[0], "junk image: %s", res[2].message);
    CHECK(res[3].status == TKR_ERR_INVALID_ARG && strstr(res[3].message, "999999999"), "bad id: %s",
          res[3].message);
    float zero = 0;
    for (int d = 0; d < D; d++) zero += out[1 * D + d] * out[1 * D + d];
    CHECK(zero == 0, "failed item vector zeroed");
    tkr_model_free(m);
}

static void test_token_ids_equal_text(void) {
    tkr_model *m = load_m1(NULL);
    CHECK(m != NULL, "model loads");
    if (!m) return;
    int32_t *ids = NULL;
    size_t n = 0;
    tkr_error e;
    const char *text = "Token ids are the text.";
    CHECK(tkr_tokenize(tkr_model_tokenizer(m), text, strlen(text), &ids, &n, &e) == TKR_OK, "tokenize");
    tkr_item a = tkr_item_default(), b = tkr_item_default();
    a.text = text;
    b.token_ids = ids;
    b.n_token_ids = n;
    float va[64], vb[64];
    tkr_result ra, rb;
    CHECK(tkr_embed(m, &a, 1, va, &ra, &e) == TKR_OK && tkr_embed(m, &b, 1, vb, &rb, &e) == TKR_OK, "embed");
    CHECK(ra.prompt_tokens == rb.prompt_tokens, "tokens %d vs %d", ra.prompt_tokens, rb.prompt_tokens);
    CHECK(!memcmp(va, vb, sizeof(float) * (size_t)tkr_model_dim(m)), "same vector");
    tkr_free(ids);
    tkr_model_free(m);
}

static void test_limits_and_params(void) {
    tkr_model_params mp = tkr_model_default_params();
    mp.max_tokens_per_item = 24;
    tkr_model *m = load_m1(&mp);
    CHECK(m != NULL, "model loads");
    if (!m) return;
    tkr_item it = tkr_item_default();
    it.text = "this text is long enough to go past twenty four tokens once the template is added";
    float v[64];
    tkr_result r;
    tkr_error e;
    CHECK(tkr_embed(m, &it, 1, v, &r, &e) == TKR_OK, "call");
    CHECK(r.status == TKR_ERR_LIMIT && strstr(r.message, "limit"), "over limit: %s", r.message);
    /* a typed <|image_pad|> is an ordinary token without images (as in the reference), an
     * error with images (the counts no longer match) */
    it.text = "<|image_pad|>";
    CHECK(tkr_embed(m, &it, 1, v, &r, &e) == TKR_OK && r.status == TKR_OK, "pad in text-only: %s", r.message);
    char img_path[4096];
    snprintf(img_path, sizeof img_path, "%s/images/photos/wuffs-hat.jpeg", test_data_dir());
    tkr_image_input img = {.path = img_path};
    it.images = &img;
    it.n_images = 1;
    CHECK(tkr_embed(m, &it, 1, v, &r, &e) == TKR_OK && r.status == TKR_ERR_INVALID_ARG, "extra pad with image: %s", r.message);
    tkr_model_free(m);

    mp = tkr_model_default_params();
    mp.min_image_tokens = 0;
    tkr_model *bad = NULL;
    const char *dir = getenv("TKR_MODEL_M1");
    CHECK(dir && tkr_model_load(dir, &mp, &bad, &e) == TKR_ERR_INVALID_ARG && !bad, "bad params refused");
    CHECK(tkr_model_load("", NULL, &bad, &e) == TKR_ERR_INVALID_ARG, "empty dir");
    CHECK(tkr_embed(NULL, &it, 1, v, &r, &e) == TKR_ERR_INVALID_ARG, "NULL model");
}

/* Truncation keeps the template: the result equals the token-id input of the first k text
 * tokens, and the prompt is exactly at the limit. */
static void test_truncation(void) {
    tkr_model_params mp = tkr_model_default_params();
    mp.max_tokens_per_item = 30;
    tkr_model *m = load_m1(&mp);
    CHECK(m != NULL, "model loads");
    if (!m) return;
    const char *text = "one two three four five six seven eight nine ten eleven twelve thirteen";
    int32_t *ids = NULL;
    size_t n = 0;
    tkr_error e;
    CHECK(tkr_tokenize(tkr_model_tokenizer(m), text, strlen(text), &ids, &n, &e) == TKR_OK, "tokenize");
    tkr_item a = tkr_item_default();
    a.text = text;
    a.truncate = true;
    float va[64], vb[64];
    tkr_result ra, rb;
    CHECK(tkr_embed(m, &a, 1, va, &ra, &e) == TKR_OK && ra.status == TKR_OK, "truncated ok: %s", ra.message);
    CHECK(ra.prompt_tokens == 30, "at the limit: %d", ra.prompt_tokens);
    CHECK(ra.truncated_tokens == (int)n + 20 - 30, "dropped %d of %zu", ra.truncated_tokens, n);
    tkr_item b = tkr_item_default();
    b.token_ids = ids;
    b.n_token_ids = n - (size_t)ra.truncated_tokens;
    CHECK(tkr_embed(m, &b, 1, vb, &rb, &e) == TKR_OK && rb.status == TKR_OK, "prefix ids");
    CHECK(!memcmp(va, vb, sizeof(float) * (size_t)tkr_model_dim(m)), "same as the first tokens");
    a.truncate = false;
    CHECK(tkr_embed(m, &a, 1, va, &ra, &e) == TKR_OK && ra.status == TKR_ERR_LIMIT, "no truncation: limit");
    tkr_free(ids);
    tkr_model_free(m);
}

/* tkr_prepare from several threads at once (images included), then tkr_embed_prepared: the
 * same vectors and counts as tkr_embed. */
typedef struct {
    const tkr_model *m;
    const tkr_item *item;
    tkr_prepared *out;
    tkr_status st;
} prep_job;

static void *prep_thread(void *arg) {
    prep_job *j = arg;
    tkr_error e;
    j->st = tkr_prepare(j->m, j->item, &j->out, &e);
    return NULL;
}

static void test_prepare_threads(void) {
    tkr_model *m = load_m1(NULL);
    CHECK(m != NULL, "model loads");
    if (!m) return;
    enum { N = 4 };
    char path[N][4096];
    const char *files[N] = {"images/photos/wuffs-hat.jpeg", "images/photos/skimage-camera.png",
                            "images/photos/wuffs-hat.lossy.webp", "images/pngsuite/basn6a08.png"};
    tkr_image_input img[N];
    tkr_item items[N];
    for (int i = 0; i < N; i++) {
        snprintf(path[i], sizeof path[i], "%s/%s", test_data_dir(), files[i]);
        img[i] = (tkr_image_input){.path = path[i]};
        items[i] = tkr_item_default();
        items[i].text = i % 2 ? "caption" : "";
        items[i].images = &img[i];
        items[i].n_images = 1;
    }
    prep_job jobs[N];
    pthread_t th[N];
    for (int i = 0; i < N; i++) {
        jobs[i] = (prep_job){m, &items[i], NULL, TKR_ERR_INTERNAL};
        pthread_create(&th[i], NULL, prep_thread, &jobs[i]);
    }
    for (int i = 0; i < N; i++) pthread_join(th[i], NULL);
    tkr_prepared *p[N];
    for (int i = 0; i < N; i++) {
        CHECK(jobs[i].st == TKR_OK, "prepare %d", i);
        p[i] = jobs[i].out;
    }
    int D = tkr_model_dim(m);
    float a[N * 64], b[N * 64];
    tkr_result ra[N], rb[N];
    tkr_error e;
    CHECK(tkr_embed_prepared(m, p, N, a, ra, &e) == TKR_OK, "embed prepared: %s", e.message);
    CHECK(tkr_embed(m, items, N, b, rb, &e) == TKR_OK, "embed");
    for (int i = 0; i < N; i++) {
        CHECK(ra[i].status == TKR_OK && rb[i].status == TKR_OK, "status %d", i);
        CHECK(ra[i].prompt_tokens == rb[i].prompt_tokens && ra[i].prompt_tokens == tkr_prepared_tokens(p[i]),
              "tokens %d", i);
        CHECK(ra[i].image_tokens > 0 && ra[i].image_tokens == tkr_prepared_image_tokens(p[i]), "image tokens %d", i);
        CHECK(!memcmp(a + i * D, b + i * D, sizeof(float) * (size_t)D), "vector %d", i);
        tkr_prepared_free(p[i]);
    }
    tkr_model_free(m);
}

int main(void) {
    RUN(test_prepare_threads);
    RUN(test_truncation);
    RUN(test_batch_invariance);
    RUN(test_chunked_scratch);
    RUN(test_item_errors_are_isolated);
    RUN(test_token_ids_equal_text);
    RUN(test_limits_and_params);
    return test_summary();
}
