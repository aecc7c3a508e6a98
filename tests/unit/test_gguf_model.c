/* test_gguf_model.c - a model from llama.cpp's GGUF pair (tests/fixtures/gguf: F32 text model and
 * F32 / Q8_0 mmproj of the m4 fixture, made by llama.cpp's converter) through the public API:
 *   - the image item's vector matches the HF reference (expected/m4-gguf-src.jsonl);
 *   - split q/k/v attention in row chunks (max_scratch_bytes tiny) gives the same bits;
 *   - without mmproj, text embeds and an image item fails with a message naming the mmproj;
 *   - has_vision and the model name ("m4-f32", the file name without .gguf). */
#include "test.h"
#include "tkr_embed.h"

#include <jansson.h>

#define G "tests/fixtures/gguf/"

/* The HF reference of the expected line whose first image is `image` (relative path). */
static int reference(const char *image, float *out, int dim, int *tokens) {
    FILE *f = fopen("tests/fixtures/expected/m4-gguf-src.jsonl", "r");
    if (!f) return 0;
    char line[1 << 17];
    int found = 0;
    while (!found && fgets(line, sizeof line, f)) {
        json_error_t je;
        json_t *o = json_loads(line, 0, &je);
        json_t *im = json_array_get(json_object_get(o, "images"), 0);
        if (im && !strcmp(json_string_value(im), image) &&
            json_array_size(json_object_get(o, "images")) == 1 && !json_object_get(o, "text")) {
            json_t *e = json_object_get(o, "embedding");
            for (int i = 0; i < dim && i < (int)json_array_size(e); i++)
                out[i] = (float)json_real_value(json_array_get(e, i));
            *tokens = (int)json_integer_value(json_object_get(o, "prompt_tokens"));
            found = (int)json_array_size(e) == dim;
        }
        json_decref(o);
    }
    fclose(f);
    return found;
}

static tkr_model *load(const char *mmproj, size_t scratch) {
    tkr_model_params p = tkr_model_default_params();
    p.mmproj = mmproj;
    p.n_threads = 2;
    if (scratch) p.max_scratch_bytes = scratch;
    tkr_model *m = NULL;
    tkr_error e;
    if (tkr_model_load(G "m4-f32.gguf", &p, &m, &e) != TKR_OK)
        fprintf(stderr, "  load: %s\n", e.message);
    return m;
}

static void test_image_against_hf(void) {
    tkr_model *a = load(G "mmproj-m4-f32.gguf", 0), *b = load(G "mmproj-m4-f32.gguf", 512);
    CHECK(a && b, "models did not load");
    if (!a || !b) goto out;
    CHECK(tkr_model_has_vision(a) && !strcmp(tkr_model_name(a), "m4-f32"), "vision %d name '%s'",
          tkr_model_has_vision(a), tkr_model_name(a));
    int dim = tkr_model_dim(a), ref_tokens = 0;
    float ref[64], va[64], vb[64];
    CHECK(dim == 8, "dim %d", dim);
    CHECK(reference("images/photos/skimage-chelsea.png", ref, dim, &ref_tokens), "no reference line");
    char path[4096];
    snprintf(path, sizeof path, "%s/images/photos/skimage-chelsea.png", test_data_dir());
    tkr_image_input img;
    memset(&img, 0, sizeof img);
    img.path = path;
    tkr_item it = tkr_item_default();
    it.images = &img;
    it.n_images = 1;
    tkr_result ra, rb;
    tkr_error e;
    CHECK(tkr_embed(a, &it, 1, va, &ra, &e) == TKR_OK && ra.status == TKR_OK, "embed: %s %s",
          e.message, ra.message);
    CHECK(tkr_embed(b, &it, 1, vb, &rb, &e) == TKR_OK && rb.status == TKR_OK, "embed chunked");
    CHECK(!memcmp(va, vb, sizeof(float) * (size_t)dim), "row chunks changed the vector");
    CHECK(ra.prompt_tokens == ref_tokens, "prompt tokens %d vs HF %d", ra.prompt_tokens, ref_tokens);
    double cos = test_cosine(va, ref, dim);
    CHECK(cos >= 0.99999, "cos %.9f against HF", cos);
out:
    tkr_model_free(a);
    tkr_model_free(b);
}

static void test_without_mmproj(void) {
    tkr_model *m = load(NULL, 0);
    CHECK(m != NULL, "text model did not load");
    if (!m) return;
    CHECK(!tkr_model_has_vision(m), "no mmproj, yet vision");
    float v[64];
    tkr_item it = tkr_item_default();
    it.text = "Hello world";
    tkr_result r;
    tkr_error e;
    CHECK(tkr_embed(m, &it, 1, v, &r, &e) == TKR_OK && r.status == TKR_OK, "text: %s", r.message);
    char path[4096];
    snprintf(path, sizeof path, "%s/images/photos/skimage-chelsea.png", test_data_dir());
    tkr_image_input img;
    memset(&img, 0, sizeof img);
    img.path = path;
    it.images = &img;
    it.n_images = 1;
    CHECK(tkr_embed(m, &it, 1, v, &r, &e) == TKR_OK && r.status == TKR_ERR_UNSUPPORTED &&
              strstr(r.message, "mmproj"), "image: status %d '%s'", r.status, r.message);
    tkr_model_free(m);
}

int main(void) {
    RUN(test_image_against_hf);
    RUN(test_without_mmproj);
    return test_summary();
}
