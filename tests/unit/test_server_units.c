/* test_server_units.c - the server's pieces without sockets: buffers, auth, options, image
 * probing and sources, metrics text, request parsing and response building (with the fake
 * engine). */
#define _XOPEN_SOURCE 700   /* mkdtemp, symlink */
#include "fake_engine.h"
#include "server/api_embeddings.h"
#include "server/auth.h"
#include "server/config.h"
#include "server/image_probe.h"
#include "server/image_source.h"
#include "server/metrics.h"
#include "server/sbuf.h"
#include "test.h"
#include "util/base64.h"
#include "util/error.h"
#include "util/platform.h"

#include <stdint.h>
#include <unistd.h>

/* ---- helpers ---------------------------------------------------------------------------- */

static uint8_t *read_data(const char *rel, size_t *n) {
    char *buf = NULL;
    tkr_error err;
    if (tkr_read_file(test_data_path(rel), 64u << 20, &buf, n, &err) != TKR_OK) {
        fprintf(stderr, "  cannot read %s: %s\n", rel, err.message);
        return NULL;
    }
    return (uint8_t *)buf;
}

/* "data:image/png;base64,...." of a shared-data file (malloc'ed). */
static char *data_uri(const char *rel) {
    size_t n = 0;
    uint8_t *d = read_data(rel, &n);
    if (!d) return NULL;
    size_t b = tkr_base64_encoded_size(n);
    char *s = malloc(b + 32);
    strcpy(s, "data:image/png;base64,");
    tkr_base64_encode(d, n, s + strlen(s));
    free(d);
    return s;
}

typedef struct {
    fake_engine fake;
    tkr_engine eng;
    tkr_server_config cfg;
    tkr_image_source_policy img;
} parse_env;

static void env_init(parse_env *e) {
    fake_engine_init(&e->fake, 16);
    e->eng = fake_engine_table(&e->fake);
    e->cfg = tkr_server_config_default();
    e->cfg.model_dir = "fake";
    memset(&e->img, 0, sizeof e->img);
    e->img.max_bytes = e->cfg.max_image_bytes;
}

/* Parses body; on failure copies the error out. */
static tkr_status parse(parse_env *e, const char *body, tkr_api_request *req, tkr_api_error *err) {
    memset(err, 0, sizeof *err);
    return tkr_api_parse_embeddings(&e->cfg, &e->eng, &e->img, body, strlen(body), req, err);
}

/* Expects a 400 whose param and message contain the given fragments. */
static void expect_400(parse_env *e, const char *body, const char *param, const char *msg_part) {
    tkr_api_request req;
    tkr_api_error err;
    tkr_status st = parse(e, body, &req, &err);
    CHECK(st != TKR_OK, "accepted: %s", body);
    if (st == TKR_OK) { tkr_api_request_free(&e->eng, &req); return; }
    CHECK(err.status == 400, "status %d for %s", err.status, body);
    CHECK(!strcmp(err.type, "invalid_request_error"), "type %s", err.type);
    if (param) CHECK(!strcmp(err.param, param), "param '%s' (want '%s') for %s: %s", err.param, param, body, err.message);
    if (msg_part) CHECK(strstr(err.message, msg_part) != NULL, "message '%s' lacks '%s'", err.message, msg_part);
    CHECK(req.items == NULL && req.root == NULL, "request not emptied on error");
}

/* ---- sbuf ------------------------------------------------------------------------------- */

static void test_sbuf_json(void) {
    sbuf b;
    sbuf_init(&b, 0);
    sbuf_json_string(&b, "a\"b\\c\n\x01\xc3\xa9", 9);
    CHECK(sbuf_ok(&b) && !strcmp(b.data, "\"a\\\"b\\\\c\\n\\u0001\xc3\xa9\""), "escaped: %s", b.data);
    sbuf_free(&b);
    sbuf_init(&b, 0);
    float vals[] = {0.1f, -1.0f, 1e-20f, 3.4028235e38f, 0.0f, -0.333333343f};
    for (int i = 0; i < 6; i++) {
        b.len = 0;
        sbuf_json_float(&b, vals[i]);
        float back = strtof(b.data, NULL);
        CHECK(back == vals[i], "%s does not round-trip %.9g", b.data, (double)vals[i]);
    }
    sbuf_json_float(&b, NAN);
    CHECK(!sbuf_ok(&b), "NaN must fail the buffer, not emit invalid JSON");
    sbuf_free(&b);
    sbuf_init(&b, 10);
    sbuf_puts(&b, "0123456789");
    CHECK(sbuf_ok(&b) && b.len == 10, "exactly the limit fits");
    sbuf_puts(&b, "x");
    CHECK(!sbuf_ok(&b), "over the limit fails");
    CHECK(sbuf_take(&b, NULL) == NULL, "a failed buffer gives nothing");
    sbuf_free(&b);
}

/* ---- auth ------------------------------------------------------------------------------- */

static void test_auth(void) {
    CHECK(tkr_auth_equal("secret", 6, "secret", 6), "equal");
    CHECK(!tkr_auth_equal("secreT", 6, "secret", 6), "last byte differs");
    CHECK(!tkr_auth_equal("secret2", 7, "secret", 6), "longer guess");
    CHECK(!tkr_auth_equal("secre", 5, "secret", 6), "prefix");
    CHECK(!tkr_auth_equal("", 0, "secret", 6), "empty");
    char *keys[] = {"k-one", "k-two"};
    CHECK(tkr_auth_check(NULL, NULL, 0), "no keys: open");
    CHECK(!tkr_auth_check(NULL, keys, 2), "missing header");
    CHECK(tkr_auth_check("Bearer k-one", keys, 2), "first key");
    CHECK(tkr_auth_check("bearer   k-two  ", keys, 2), "second key, case and spaces");
    CHECK(!tkr_auth_check("Bearer k-three", keys, 2), "unknown key");
    CHECK(!tkr_auth_check("Basic k-one", keys, 2), "wrong scheme");
    CHECK(!tkr_auth_check("Bearerk-one", keys, 2), "no space after scheme");
    CHECK(!tkr_auth_check("Bearer ", keys, 2), "empty key");
}

/* ---- config ----------------------------------------------------------------------------- */

static tkr_status parse_args(tkr_server_config *c, const char *const *args, int n, tkr_error *err) {
    char *argv[32];
    argv[0] = "serve";
    for (int i = 0; i < n; i++) argv[i + 1] = (char *)args[i];
    bool help = false;
    *c = tkr_server_config_default();
    return tkr_server_config_parse(c, n + 1, argv, &help, err);
}

static void test_config(void) {
    tkr_server_config c;
    tkr_error err;
    const char *ok[] = {"-m", "/m", "--port=0", "--host", "0.0.0.0", "--max-body-bytes", "2M",
                        "--request-timeout", "1.5", "--api-key", "abc", "--max-items=8",
                        "--allow-remote-images", "--remote-image-hosts", "img.example.com, *.cdn.org",
                        "--quiet"};
    CHECK(parse_args(&c, ok, 16, &err) == TKR_OK, "valid options: %s", err.message);
    CHECK(c.port == 0 && !strcmp(c.host, "0.0.0.0") && c.max_body_bytes == 2u << 20, "values");
    CHECK(c.request_timeout_s == 1.5 && c.n_api_keys == 1 && !strcmp(c.api_keys[0], "abc"), "key");
    CHECK(c.max_items_per_request == 8 && c.allow_remote_images && c.quiet, "flags");
    CHECK(c.n_remote_hosts == 2 && !strcmp(c.remote_hosts[1], "*.cdn.org"), "hosts");
    tkr_server_config_free(&c);

    struct { const char *args[4]; int n; const char *msg; } bad[] = {
        {{"--port", "8080"}, 2, "-m/--model DIR is required"},
        {{"-m", "x", "--port", "70000"}, 4, "--port: 70000 is out of range"},
        {{"-m", "x", "--max-items", "ten"}, 4, "not an integer"},
        {{"-m", "x", "--bogus"}, 3, "unknown option '--bogus'"},
        {{"-m", "x", "--port"}, 3, "--port needs a value"},
        {{"-m", "x", "--max-body-bytes", "5Q"}, 4, "not a size"},
        {{"-m", "x", "--allow-remote-images"}, 3, "needs --remote-image-hosts"},
        {{"-m", "x", "--remote-image-hosts", "a.com"}, 4, "--allow-remote-images is not"},
        {{"-m", "x", "--max-items", "5000"}, 4, "must not exceed --max-queue-items"},
        {{"-m", "x", "--api-key", "has space"}, 4, "space or control"},
        {{"-m", "x", "--max-inflight-bytes", "1M"}, 4, "must not exceed --max-inflight-bytes"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        tkr_error_clear(&err);
        tkr_status st = parse_args(&c, bad[i].args, bad[i].n, &err);
        CHECK(st != TKR_OK, "case %zu accepted", i);
        CHECK(strstr(err.message, bad[i].msg) != NULL, "case %zu: '%s' lacks '%s'", i, err.message, bad[i].msg);
        tkr_server_config_free(&c);
    }

    /* key file: comments, blank lines, CRLF */
    char dir[] = "/tmp/tkr-cfg-XXXXXX";
    CHECK(mkdtemp(dir) != NULL, "mkdtemp");
    char path[256];
    snprintf(path, sizeof path, "%s/keys", dir);
    FILE *f = fopen(path, "w");
    fputs("# keys\n\n  key-a  \r\nkey-b\n", f);
    fclose(f);
    const char *kf[] = {"-m", "x", "--api-key-file", path};
    CHECK(parse_args(&c, kf, 4, &err) == TKR_OK, "key file: %s", err.message);
    CHECK(c.n_api_keys == 2 && !strcmp(c.api_keys[0], "key-a") && !strcmp(c.api_keys[1], "key-b"),
          "keys read: %d", c.n_api_keys);
    tkr_server_config_free(&c);
    f = fopen(path, "w");
    fputs("# nothing\n", f);
    fclose(f);
    CHECK(parse_args(&c, kf, 4, &err) != TKR_OK && strstr(err.message, "holds no key"), "empty key file: %s", err.message);
    tkr_server_config_free(&c);
    unlink(path);
    rmdir(dir);
}

/* ---- image probe ------------------------------------------------------------------------ */

static void test_image_probe(void) {
    struct { const char *rel; tkr_image_format fmt; int w, h; } cases[] = {
        {"images/photos/skimage-astronaut.png", TKR_IMAGE_PNG, 512, 512},
        {"images/photos/skimage-chelsea.png", TKR_IMAGE_PNG, 451, 300},
        {"images/photos/skimage-rocket.jpg", TKR_IMAGE_JPEG, 640, 427},
        {"images/photos/libjpeg-turbo-testorig.jpg", TKR_IMAGE_JPEG, 227, 149},
        {"images/photos/wuffs-peacock.progressive.jpeg", TKR_IMAGE_JPEG, 100, 75},
        {"images/photos/wuffs-harvesters.lossy.webp", TKR_IMAGE_WEBP, 1165, 859},
        {"images/photos/wuffs-bricks-color.lossless.webp", TKR_IMAGE_WEBP, 160, 120},
        {"images/pngsuite/ibasn2c08.png", TKR_IMAGE_PNG, 32, 32},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t n = 0;
        uint8_t *d = read_data(cases[i].rel, &n);
        CHECK(d != NULL, "read %s", cases[i].rel);
        if (!d) continue;
        tkr_image_format fmt = 0;
        int w = 0, h = 0;
        tkr_error err;
        tkr_status st = tkr_image_probe(d, n, &fmt, &w, &h, &err);
        CHECK(st == TKR_OK && fmt == cases[i].fmt && w == cases[i].w && h == cases[i].h,
              "%s: st %d fmt %d %dx%d (%s)", cases[i].rel, st, fmt, w, h, st ? err.message : "");
        /* every prefix is either a clean error or the same answer: never a read past the end */
        for (size_t cut = 0; cut < n && cut < 700; cut += 7) {
            uint8_t *p = malloc(cut ? cut : 1);
            memcpy(p, d, cut);
            int w2 = 0, h2 = 0;
            if (tkr_image_probe(p, cut, &fmt, &w2, &h2, &err) == TKR_OK)
                CHECK(w2 == cases[i].w && h2 == cases[i].h, "%s cut at %zu: %dx%d", cases[i].rel, cut, w2, h2);
            free(p);
        }
        free(d);
    }
    size_t n = 0;
    uint8_t *gif = read_data("images/seeds/afl-not_kitty.gif", &n);
    tkr_image_format fmt;
    int w, h;
    tkr_error err;
    CHECK(gif && tkr_image_probe(gif, n, &fmt, &w, &h, &err) == TKR_ERR_IMAGE &&
          strstr(err.message, "not a PNG, JPEG or WebP"), "GIF refused");
    free(gif);
    /* the spec's worked examples (h x w -> tokens) */
    CHECK(tkr_qwen2vl_image_tokens(640, 480, 256, 1280) == 391, "480x640");
    CHECK(tkr_qwen2vl_image_tokens(1024, 1024, 256, 1280) == 1225, "1024x1024");
    CHECK(tkr_qwen2vl_image_tokens(224, 224, 256, 1280) == 256, "224x224");
    CHECK(tkr_qwen2vl_image_tokens(1920, 1080, 256, 1280) == 1222, "1080x1920");
}

/* ---- image sources ---------------------------------------------------------------------- */

static void test_image_source(void) {
    tkr_image_source_policy p;
    memset(&p, 0, sizeof p);
    p.max_bytes = 1 << 20;
    uint8_t *out = NULL;
    size_t n = 0;
    tkr_error err;
    char *uri = data_uri("images/photos/wuffs-hat.jpeg");
    size_t want = 0;
    uint8_t *orig = read_data("images/photos/wuffs-hat.jpeg", &want);
    CHECK(uri && orig, "test data");
    if (!uri || !orig) { free(uri); free(orig); return; }
    CHECK(tkr_image_source_load(&p, uri, strlen(uri), &out, &n, &err) == TKR_OK && n == want &&
          !memcmp(out, orig, n), "data: URI decodes to the file");
    free(out);
    const char *raw = strchr(uri, ',') + 1;
    CHECK(tkr_image_source_load(&p, raw, strlen(raw), &out, &n, &err) == TKR_OK && n == want &&
          !memcmp(out, orig, n), "raw base64 decodes to the file");
    free(out);
    CHECK(tkr_image_source_load(&p, "data:image/png,abc", 18, &out, &n, &err) == TKR_ERR_INVALID_ARG &&
          strstr(err.message, "not base64"), "percent-encoded data: URI refused: %s", err.message);
    CHECK(tkr_image_source_load(&p, "https://x.org/a.png", 19, &out, &n, &err) == TKR_ERR_INVALID_ARG &&
          strstr(err.message, "remote image URLs are disabled"), "remote disabled: %s", err.message);
    CHECK(tkr_image_source_load(&p, "file://a.png", 12, &out, &n, &err) == TKR_ERR_INVALID_ARG &&
          strstr(err.message, "--image-dir"), "file disabled: %s", err.message);
    CHECK(tkr_image_source_load(&p, "not base64 !", 12, &out, &n, &err) == TKR_ERR_INVALID_ARG,
          "garbage refused");
    p.max_bytes = 1000;
    CHECK(tkr_image_source_load(&p, uri, strlen(uri), &out, &n, &err) == TKR_ERR_LIMIT &&
          strstr(err.message, "larger than 1000 bytes"), "size cap: %s", err.message);

    /* file:// below an image directory, and escapes that must fail */
    char dir[] = "/tmp/tkr-img-XXXXXX";
    CHECK(mkdtemp(dir) != NULL, "mkdtemp");
    char path[512], sub[512], link[512];
    snprintf(sub, sizeof sub, "%s/sub", dir);
    mkdir(sub, 0700);
    snprintf(path, sizeof path, "%s/sub/hat.jpeg", dir);
    FILE *f = fopen(path, "wb");
    fwrite(orig, 1, want, f);
    fclose(f);
    snprintf(link, sizeof link, "%s/escape.jpeg", dir);
    CHECK(symlink(test_data_path("images/photos/wuffs-hat.jpeg"), link) == 0, "symlink");
    p.image_dir = dir;
    p.max_bytes = 1 << 20;
    CHECK(tkr_image_source_load(&p, "file://sub/hat.jpeg", 19, &out, &n, &err) == TKR_OK && n == want,
          "relative file: %s", err.message);
    free(out);
    char abs_ref[600];
    snprintf(abs_ref, sizeof abs_ref, "file://%s", path);
    CHECK(tkr_image_source_load(&p, abs_ref, strlen(abs_ref), &out, &n, &err) == TKR_OK && n == want,
          "absolute file inside: %s", err.message);
    free(out);
    const char *escapes[] = {"file://../../etc/passwd", "file:///etc/passwd", "file://escape.jpeg",
                             "file://sub/../../x", "file://sub", "file://missing.png"};
    for (size_t i = 0; i < sizeof escapes / sizeof escapes[0]; i++) {
        tkr_status st = tkr_image_source_load(&p, escapes[i], strlen(escapes[i]), &out, &n, &err);
        CHECK(st == TKR_ERR_INVALID_ARG, "%s: status %d", escapes[i], st);
        CHECK(!strstr(err.message, "/etc") || strstr(err.message, "not found in"), "%s leaks: %s", escapes[i], err.message);
    }
    unlink(link);
    unlink(path);
    rmdir(sub);
    rmdir(dir);
    free(uri);
    free(orig);
}

/* ---- metrics ------------------------------------------------------------------------------ */

static void test_metrics(void) {
    tkr_metrics m;
    CHECK(tkr_metrics_init(&m) == 0, "init");
    tkr_metrics_request(&m, TKR_ROUTE_EMBEDDINGS, 200, 0.004);
    tkr_metrics_request(&m, TKR_ROUTE_EMBEDDINGS, 200, 0.2);
    tkr_metrics_request(&m, TKR_ROUTE_EMBEDDINGS, 429, 0.0001);
    tkr_metrics_request(&m, TKR_ROUTE_OTHER, 404, 0.0001);
    tkr_metrics_embedded(&m, 3, 42, 1, 0);
    tkr_metrics_batch(&m, 3, 42, 0.01);
    tkr_metrics_gauges g = {1, 5, 1024, 2, 4096, NULL, 0, 0, 0, 0};
    sbuf b;
    sbuf_init(&b, 0);
    tkr_metrics_render(&m, &g, &b);
    const char *want[] = {
        "tkr_http_requests_total{route=\"/v1/embeddings\",code=\"200\"} 2\n",
        "tkr_http_requests_total{route=\"/v1/embeddings\",code=\"429\"} 1\n",
        "tkr_http_requests_total{route=\"other\",code=\"404\"} 1\n",
        "tkr_http_request_duration_seconds_bucket{route=\"/v1/embeddings\",le=\"0.005\"} 2\n",
        "tkr_http_request_duration_seconds_bucket{route=\"/v1/embeddings\",le=\"0.25\"} 3\n",
        "tkr_http_request_duration_seconds_bucket{route=\"/v1/embeddings\",le=\"+Inf\"} 3\n",
        "tkr_http_request_duration_seconds_count{route=\"/v1/embeddings\"} 3\n",
        "tkr_embedding_items_total 3\n", "tkr_prompt_tokens_total 42\n", "tkr_images_total 1\n",
        "tkr_batch_items_bucket{le=\"2\"} 0\n", "tkr_batch_items_bucket{le=\"4\"} 1\n",
        "tkr_queue_items 5\n", "tkr_queue_capacity_items 1024\n", "tkr_requests_in_flight 2\n",
        "tkr_ready 1\n", "# TYPE tkr_batch_duration_seconds histogram\n", "tkr_request_body_bytes 4096\n",
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        CHECK(b.data && strstr(b.data, want[i]), "metrics lack: %s", want[i]);
    /* the CPU: GPU gauges at 0, no device line */
    CHECK(b.data && strstr(b.data, "tkr_gpu_memory_bytes{kind=\"weights\"} 0\n") &&
              strstr(b.data, "tkr_gpu_memory_total_bytes 0\n") && strstr(b.data, "tkr_pinned_host_bytes 0\n"),
          "CPU GPU gauges");
    CHECK(b.data && !strstr(b.data, "tkr_device_info"), "no device line on the CPU");
    sbuf_free(&b);
    tkr_metrics_destroy(&m);
}

/* A GPU engine's memory gauges and device name (label value escaped). */
static void test_metrics_gpu(void) {
    tkr_metrics m;
    CHECK(tkr_metrics_init(&m) == 0, "init");
    tkr_metrics_gauges g = {1, 0, 1024, 0, 0, "cuda:0 \"X\" GPU\\1", 4400000000ull, 123456789ull,
                            150000000000ull, 65536ull};
    sbuf b;
    sbuf_init(&b, 0);
    tkr_metrics_render(&m, &g, &b);
    const char *want[] = {
        "# TYPE tkr_gpu_memory_bytes gauge\n",
        "tkr_gpu_memory_bytes{kind=\"weights\"} 4400000000\n",
        "tkr_gpu_memory_bytes{kind=\"activations\"} 123456789\n",
        "tkr_gpu_memory_total_bytes 150000000000\n",
        "tkr_pinned_host_bytes 65536\n",
        "tkr_device_info{device=\"cuda:0 \\\"X\\\" GPU\\\\1\"} 1\n",
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        CHECK(b.data && strstr(b.data, want[i]), "metrics lack: %s", want[i]);
    sbuf_free(&b);
    tkr_metrics_destroy(&m);
}

/* ---- request parsing ---------------------------------------------------------------------- */

static void test_parse_shapes(void) {
    parse_env e;
    env_init(&e);
    tkr_api_request req;
    tkr_api_error err;

    CHECK(parse(&e, "{\"model\":\"m\",\"input\":\"hello world\"}", &req, &err) == TKR_OK, "string: %s", err.message);
    CHECK(req.n_items == 1 && req.single_input && req.items[0].item.text_len == 11 && !req.base64, "one text item");
    CHECK(req.items[0].est_tokens == 8 + 5 + 2, "tokens %d", req.items[0].est_tokens);
    tkr_api_request_free(&e.eng, &req);

    CHECK(parse(&e, "{\"model\":\"m\",\"input\":[\"a\",\"b c\"],\"encoding_format\":\"base64\",\"dimensions\":4}", &req, &err) == TKR_OK, "strings: %s", err.message);
    CHECK(req.n_items == 2 && !req.single_input && req.base64 && req.dimensions == 4, "two items");
    tkr_api_request_free(&e.eng, &req);

    CHECK(parse(&e, "{\"model\":\"m\",\"input\":[1,2,3]}", &req, &err) == TKR_OK, "ids: %s", err.message);
    CHECK(req.n_items == 1 && req.items[0].item.n_token_ids == 3 && req.items[0].item.token_ids[2] == 3 && !req.items[0].item.text, "one id item");
    tkr_api_request_free(&e.eng, &req);

    CHECK(parse(&e, "{\"model\":\"m\",\"input\":[[5],[6,7]]}", &req, &err) == TKR_OK, "id arrays: %s", err.message);
    CHECK(req.n_items == 2 && req.items[1].item.n_token_ids == 2, "two id items");
    tkr_api_request_free(&e.eng, &req);

    char *png = data_uri("images/pngsuite/basn2c08.png");
    char *jpg = data_uri("images/photos/wuffs-hat.jpeg");
    size_t cap = 2 * (strlen(png) + strlen(jpg)) + 1024;
    char *body = malloc(cap);
    snprintf(body, cap,
             "{\"model\":\"m\",\"instruction\":\"Find it.\",\"input\":["
             "{\"content\":[{\"type\":\"text\",\"text\":\"first\"},{\"type\":\"image_url\",\"image_url\":{\"url\":\"%s\"}},"
             "{\"type\":\"text\",\"text\":\"second\"},{\"type\":\"image_url\",\"image_url\":\"%s\"}]},"
             "{\"text\":\"cat\",\"image\":\"%s\",\"instruction\":\"Own.\"},"
             "{\"image\":[\"%s\"]},"
             "\"plain\"]}", png, jpg, jpg, png);
    CHECK(parse(&e, body, &req, &err) == TKR_OK, "multimodal: %s", err.message);
    if (req.n_items == 4) {
        tkr_api_item *a = &req.items[0], *b = &req.items[1], *c = &req.items[2], *d = &req.items[3];
        CHECK(a->item.n_images == 2 && a->item.text_len == 12 && !memcmp(a->item.text, "first\nsecond", 12), "content item");
        CHECK(a->item.instruction && !strcmp(a->item.instruction, "Find it."), "request instruction");
        CHECK(b->item.n_images == 1 && !strcmp(b->item.instruction, "Own."), "item instruction overrides");
        CHECK(c->item.n_images == 1 && c->item.text == NULL, "image-only item");
        CHECK(d->item.n_images == 0 && d->item.text_len == 5, "string mixed with objects");
        /* 32x32 png: 4 tokens (min 4*784 px); 90x112 jpeg: round to 84x112 -> 3*4 = 12 */
        CHECK(c->image_tokens == tkr_qwen2vl_image_tokens(32, 32, 4, 64), "png tokens %d", c->image_tokens);
        CHECK(b->image_tokens == tkr_qwen2vl_image_tokens(90, 112, 4, 64), "jpeg tokens %d", b->image_tokens);
        CHECK(req.n_images == 4, "images counted: %d", req.n_images);
    } else {
        CHECK(0, "4 items expected, got %d", req.n_items);
    }
    tkr_api_request_free(&e.eng, &req);
    free(body);
    free(png);
    free(jpg);
}

static void test_parse_errors(void) {
    parse_env e;
    env_init(&e);
    expect_400(&e, "not json", NULL, "not valid JSON");
    expect_400(&e, "[1,2]", NULL, "JSON object");
    expect_400(&e, "{\"input\":\"x\"}", "model", "model is required");
    expect_400(&e, "{\"model\":3,\"input\":\"x\"}", "model", "must be a string");
    expect_400(&e, "{\"model\":\"m\"}", "input", "input is required");
    expect_400(&e, "{\"model\":\"m\",\"input\":\"\"}", "input", "is empty");
    expect_400(&e, "{\"model\":\"m\",\"input\":[]}", "input", "empty array");
    expect_400(&e, "{\"model\":\"m\",\"input\":[\"a\",\"\"]}", "input[1]", "is empty");
    expect_400(&e, "{\"model\":\"m\",\"input\":5}", "input", "must be a string");
    expect_400(&e, "{\"model\":\"m\",\"input\":[\"a\",5]}", "input[1]", "only integers");
    expect_400(&e, "{\"model\":\"m\",\"input\":[[1,\"x\"]]}", "input[0]", "input[0][1] is not an integer");
    expect_400(&e, "{\"model\":\"m\",\"input\":[[]]}", "input[0]", "empty token array");
    expect_400(&e, "{\"model\":\"m\",\"input\":[1,-2]}", "input", "not a token id");
    expect_400(&e, "{\"model\":\"m\",\"input\":[99999999]}", "input", "not a token id");
    expect_400(&e, "{\"model\":\"m\",\"input\":[true]}", "input[0]", "must be a string");
    expect_400(&e, "{\"model\":\"m\",\"input\":\"x\",\"encoding_format\":\"int8\"}", "encoding_format", "float");
    expect_400(&e, "{\"model\":\"m\",\"input\":\"x\",\"dimensions\":0}", "dimensions", "from 1 to 16");
    expect_400(&e, "{\"model\":\"m\",\"input\":\"x\",\"dimensions\":17}", "dimensions", "from 1 to 16");
    expect_400(&e, "{\"model\":\"m\",\"input\":\"x\",\"dimensions\":2.5}", "dimensions", NULL);
    expect_400(&e, "{\"model\":\"m\",\"input\":\"x\",\"user\":1}", "user", NULL);
    expect_400(&e, "{\"model\":\"m\",\"input\":\"x\",\"truncate\":\"yes\"}", "truncate", NULL);
    expect_400(&e, "{\"model\":\"m\",\"input\":\"x\",\"instruction\":[]}", "instruction", NULL);
    expect_400(&e, "{\"model\":\"m\",\"input\":\"x\",\"input\":\"y\"}", NULL, "duplicate");
    expect_400(&e, "{\"model\":\"m\",\"input\":[{}]}", "input[0]", "needs \"content\"");
    expect_400(&e, "{\"model\":\"m\",\"input\":[{\"content\":[]}]}", "input[0]", "non-empty array");
    expect_400(&e, "{\"model\":\"m\",\"input\":[{\"content\":[{\"type\":\"audio\"}]}]}", "input[0].content[0]", "not supported");
    expect_400(&e, "{\"model\":\"m\",\"input\":[{\"content\":[{\"type\":\"text\",\"text\":1}]}]}", "input[0].content[0]", "must be a string");
    expect_400(&e, "{\"model\":\"m\",\"input\":[{\"content\":[{\"type\":\"image_url\",\"image_url\":{}}]}]}", "input[0].content[0].image_url.url", "missing");
    expect_400(&e, "{\"model\":\"m\",\"input\":[{\"content\":[{\"type\":\"image_url\",\"image_url\":{\"url\":\"@@@\"}}]}]}", "input[0].content[0].image_url.url", "not a data: URI");
    expect_400(&e, "{\"model\":\"m\",\"input\":[{\"image\":\"aGVsbG8=\"}]}", "input[0].image", "not a PNG, JPEG or WebP");
    expect_400(&e, "{\"model\":\"m\",\"input\":[{\"image\":[]}]}", "input[0].image", "empty array");
    expect_400(&e, "{\"model\":\"m\",\"input\":[{\"text\":\"a\",\"content\":[]}]}", "input[0]", "either");
    expect_400(&e, "{\"model\":\"m\",\"input\":[{\"image\":\"http://127.0.0.1/x.png\"}]}", "input[0].image", "disabled");

    /* limits */
    e.cfg.max_items_per_request = 2;
    expect_400(&e, "{\"model\":\"m\",\"input\":[\"a\",\"b\",\"c\"]}", "input", "3 items, over the limit of 2");
    e.cfg.max_items_per_request = 256;
    e.cfg.max_tokens_per_item = 16;   /* template is 13 tokens: 3 words fit, 4 do not */
    expect_400(&e, "{\"model\":\"m\",\"input\":\"one two three four\"}", "input", "17 prompt tokens, over the limit of 16");
    expect_400(&e, "{\"model\":\"m\",\"input\":[1,2,3,4]}", "input", "\"truncate\": true");
    e.cfg.max_tokens_per_item = 8192;
    e.cfg.max_request_tokens = 30;
    expect_400(&e, "{\"model\":\"m\",\"input\":[\"a b\",\"c d\",\"e f\"]}", "input", "limit reached at input[2]");
    e.cfg.max_request_tokens = 300000;
    char *png = data_uri("images/pngsuite/basn2c08.png");
    char body[4096];
    e.cfg.max_images_per_item = 1;
    snprintf(body, sizeof body, "{\"model\":\"m\",\"input\":[{\"image\":[\"%s\",\"%s\"]}]}", png, png);
    expect_400(&e, body, "input[0]", "2 images, over the limit of 1");
    e.cfg.max_images_per_item = 16;
    e.cfg.max_image_pixels = 1000;
    snprintf(body, sizeof body, "{\"model\":\"m\",\"input\":[{\"image\":\"%s\"}]}", png);
    expect_400(&e, body, "input[0].image", "32x32 = 1024 pixels, over the limit of 1000");
    e.cfg.max_image_pixels = 64ull << 20;
    e.fake.has_vision = false;
    e.eng = fake_engine_table(&e.fake);
    expect_400(&e, body, "input[0].image", "does not take images");
    free(png);
}

static void test_parse_truncate(void) {
    parse_env e;
    env_init(&e);
    e.cfg.max_tokens_per_item = 16;   /* 13 template tokens + 3 text tokens */
    tkr_api_request req;
    tkr_api_error err;
    CHECK(parse(&e, "{\"model\":\"m\",\"truncate\":true,\"input\":[\"one two three four five\",\"a b\"]}", &req, &err) == TKR_OK, "truncate: %s", err.message);
    if (req.n_items == 2) {
        tkr_api_item *a = &req.items[0], *b = &req.items[1];
        CHECK(a->truncated && a->item.truncate && a->item.text && a->item.text_len == 23 && a->est_tokens == 16,
              "the engine is asked to cut the text: est %d", a->est_tokens);
        CHECK(!b->truncated && !b->item.truncate && b->item.text_len == 3, "short text untouched");
        CHECK(req.n_truncated == 1, "counted");
        /* what the engine then computes equals the first 3 words, template kept */
        e.fake.max_tokens_per_item = 16;
        float got[16], ref[16];
        tkr_result r1, r2;
        fake_embed_one(&e.fake, &a->item, got, &r1);
        tkr_item short_item;
        memset(&short_item, 0, sizeof short_item);
        short_item.text = "one two three";
        fake_embed_one(&e.fake, &short_item, ref, &r2);
        CHECK(r1.status == TKR_OK && r1.truncated_tokens == 2 && r1.prompt_tokens == 16 && !memcmp(got, ref, sizeof got),
              "truncated = the text's first words");
    }
    tkr_api_request_free(&e.eng, &req);
    CHECK(parse(&e, "{\"model\":\"m\",\"truncate\":true,\"input\":[1,2,3,4,5,6,7,8,9]}", &req, &err) == TKR_OK, "ids truncate: %s", err.message);
    CHECK(req.n_items == 1 && req.items[0].item.n_token_ids == 9 && req.items[0].item.truncate && req.items[0].est_tokens == 16,
          "ids marked for truncation");
    tkr_api_request_free(&e.eng, &req);
    /* a template alone over the limit cannot be truncated */
    e.cfg.max_tokens_per_item = 16;
    expect_400(&e, "{\"model\":\"m\",\"truncate\":true,\"instruction\":\"a b c d e f g h i\",\"input\":\"x\"}", "input", "over the limit");
}

/* ---- responses ---------------------------------------------------------------------------- */

static void test_response(void) {
    parse_env e;
    env_init(&e);
    tkr_api_request req;
    tkr_api_error err;
    CHECK(parse(&e, "{\"model\":\"m\",\"input\":[\"alpha\",\"beta gamma\"]}", &req, &err) == TKR_OK, "parse");
    float vec[32];
    tkr_result res[2];
    fake_embed_one(&e.fake, &req.items[0].item, vec, &res[0]);
    fake_embed_one(&e.fake, &req.items[1].item, vec + 16, &res[1]);
    sbuf b;
    sbuf_init(&b, 0);
    CHECK(tkr_api_write_response(&req, "fake \"x\"", 16, vec, res, &b), "write");
    json_error_t je;
    json_t *j = json_loads(b.data, 0, &je);
    CHECK(j != NULL, "response is JSON: %s", je.text);
    CHECK(!strcmp(json_string_value(json_object_get(j, "object")), "list"), "object list");
    CHECK(!strcmp(json_string_value(json_object_get(j, "model")), "fake \"x\""), "model escaped");
    json_t *data = json_object_get(j, "data");
    CHECK(json_array_size(data) == 2, "two embeddings");
    for (size_t i = 0; i < json_array_size(data); i++) {
        json_t *d = json_array_get(data, i);
        CHECK(json_integer_value(json_object_get(d, "index")) == (json_int_t)i, "index");
        CHECK(!strcmp(json_string_value(json_object_get(d, "object")), "embedding"), "object embedding");
        json_t *v = json_object_get(d, "embedding");
        CHECK(json_array_size(v) == 16, "16 values");
        for (int k = 0; k < 16; k++)
            CHECK((float)json_real_value(json_array_get(v, (size_t)k)) == vec[i * 16 + (size_t)k], "value %d round-trips", k);
    }
    json_t *usage = json_object_get(j, "usage");
    long want = res[0].prompt_tokens + res[1].prompt_tokens;
    CHECK(json_integer_value(json_object_get(usage, "prompt_tokens")) == want &&
          json_integer_value(json_object_get(usage, "total_tokens")) == want, "usage %ld", want);
    json_decref(j);
    sbuf_free(&b);

    /* base64 + dimensions: the first 5 values, renormalised, little-endian float32 */
    req.base64 = true;
    req.dimensions = 5;
    sbuf_init(&b, 0);
    CHECK(tkr_api_write_response(&req, "m", 16, vec, res, &b), "write base64");
    j = json_loads(b.data, 0, &je);
    const char *s = json_string_value(json_object_get(json_array_get(json_object_get(j, "data"), 1), "embedding"));
    uint8_t *raw = NULL;
    size_t n = 0;
    tkr_error terr;
    CHECK(s && tkr_base64_decode(s, strlen(s), 0, &raw, &n, &terr) == TKR_OK && n == 20, "20 bytes");
    if (raw && n == 20) {
        float got[5], ref[5];
        for (int k = 0; k < 5; k++) {
            uint32_t u = (uint32_t)raw[4 * k] | (uint32_t)raw[4 * k + 1] << 8 | (uint32_t)raw[4 * k + 2] << 16 | (uint32_t)raw[4 * k + 3] << 24;
            memcpy(&got[k], &u, 4);
        }
        tkr_api_reduce_dimensions(vec + 16, 16, 5, ref);
        double norm = 0, cos = test_cosine(got, vec + 16, 5);
        for (int k = 0; k < 5; k++) norm += (double)got[k] * got[k];
        CHECK(!memcmp(got, ref, sizeof got), "base64 bytes are the reduced vector");
        CHECK(fabs(norm - 1) < 1e-6, "renormalised: %g", norm);
        CHECK(cos > 0.999999, "same direction as the prefix: %g", cos);
    }
    free(raw);
    json_decref(j);
    sbuf_free(&b);
    tkr_api_request_free(&e.eng, &req);

    tkr_api_error er;
    tkr_api_error_set(&er, 400, "invalid_request_error", NULL, "input[2]", "bad \"thing\"");
    sbuf_init(&b, 0);
    tkr_api_write_error(&er, &b);
    CHECK(!strcmp(b.data, "{\"error\":{\"message\":\"bad \\\"thing\\\"\",\"type\":\"invalid_request_error\",\"param\":\"input[2]\",\"code\":null}}"), "error body: %s", b.data);
    sbuf_free(&b);

    /* per-item engine failures name the item */
    CHECK(parse(&e, "{\"model\":\"m\",\"input\":[\"fine\",\"FAIL: no\"]}", &req, &err) == TKR_OK, "parse");
    fake_embed_one(&e.fake, &req.items[0].item, vec, &res[0]);
    fake_embed_one(&e.fake, &req.items[1].item, vec + 16, &res[1]);
    CHECK(tkr_api_check_results(&req, res, &err) != TKR_OK && err.status == 400 &&
          !strcmp(err.param, "input[1]") && strstr(err.message, "fake engine refuses"), "item failure: %s", err.message);
    tkr_api_request_free(&e.eng, &req);
}

int main(void) {
    RUN(test_sbuf_json);
    RUN(test_auth);
    RUN(test_config);
    RUN(test_image_probe);
    RUN(test_image_source);
    RUN(test_metrics);
    RUN(test_metrics_gpu);
    RUN(test_parse_shapes);
    RUN(test_parse_errors);
    RUN(test_parse_truncate);
    RUN(test_response);
    return test_summary();
}
