/* config.c - defaults, parsing and validation of the server options (see config.h). */
#include "server/config.h"
#include "util/error.h"
#include "util/platform.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <stddef.h>
#include <string.h>

#define KEY_FILE_MAX_BYTES (1u << 20)
#define API_KEY_MAX_LEN 4096
#define MAX_API_KEYS 1024
#define MAX_REMOTE_HOSTS 1024

tkr_server_config tkr_server_config_default(void) {
    tkr_server_config c;
    memset(&c, 0, sizeof c);
    c.host = "127.0.0.1";
    c.port = 8080;
    c.max_connections = 256;
    c.max_connections_per_ip = 0;
    c.idle_timeout_s = 60;
    c.read_timeout_s = 60;
    c.header_timeout_s = 10;
    c.malloc_arenas = 2;
    c.request_timeout_s = 300;
    c.drain_timeout_s = 60;
    c.max_body_bytes = (size_t)32 << 20;
    c.max_inflight_bytes = (size_t)512 << 20;
    c.max_items_per_request = 256;
    c.max_tokens_per_item = 8192;
    c.max_request_tokens = 300000;
    c.max_images_per_item = 64;      /* as many images as a default video gives */
    c.max_video_frames = 64;
    c.max_pdf_pages = 64;
    c.media_timeout_s = 60;
    c.max_image_bytes = (size_t)16 << 20;
    c.max_image_pixels = 64ull << 20;
    c.min_image_tokens = 256;
    c.max_image_tokens = 1280;
    c.max_batch_tokens = 0;          /* 0 = from the device once loaded (http.c): 8192 on the */
    c.max_batch_image_tokens = 0;    /* CPU, 5120 image tokens, 64 items; sized for a GPU     */
    c.max_batch_items = 0;
    c.max_queue_items = 1024;
    c.remote_timeout_s = 5;
    return c;
}

void tkr_server_usage(FILE *f) {
    fprintf(f,
        "usage: tkr-embed serve -m MODEL_DIR [options]\n"
        "\n"
        "An OpenAI-compatible embedding server: POST /v1/embeddings (and /embeddings),\n"
        "GET /v1/models, GET /health (public), GET /metrics (Prometheus).\n"
        "Sizes accept K, M, G suffixes (powers of 1024).\n"
        "\n"
        "model:\n"
        "  -m, --model PATH              model directory or .gguf file (required)\n"
        "      --mmproj FILE             GGUF models: the vision tower (mmproj) file\n"
        "      --model-name NAME         id reported by /v1/models (default: directory name)\n"
        "  -t, --threads N               compute threads (default: all cores)\n"
        "      --device DEV              cpu, cuda or cuda:N (default: the GPU when built\n"
        "                                with CUDA and one is present, else the CPU)\n"
        "      --precision P             GPU arithmetic: bf16 (default) or fp32 (no TF32)\n"
        "      --fast-bf16               BF16 weights: round activations to bf16 and use AVX-512\n"
        "                                BF16 dot products (faster, cos ~0.9999 to the default)\n"
        "      --release-vision-weights  drop the vision tower's weight pages after each image\n"
        "                                pass: lower peak memory (the tower is not held beside\n"
        "                                the decoder), slower next image (default off)\n"
        "      --warmup, --no-warmup     embed one batch at the text budget before ready: sizes\n"
        "                                device memory, makes and tunes the GEMM plans, fails\n"
        "                                early if the budget does not fit (default: on a GPU)\n"
        "network:\n"
        "      --host ADDR               address to bind (default 127.0.0.1)\n"
        "      --port N                  TCP port, 0 = any free port (default 8080)\n"
        "      --max-connections N       open connections, one thread each (default 256)\n"
        "      --max-connections-per-ip N  (default 0 = no per-IP limit)\n"
        "      --idle-timeout SEC        close connections idle this long (default 60)\n"
        "      --read-timeout SEC        most time to receive a request body (default 60)\n"
        "      --header-timeout SEC      most time to receive a request's headers (default 10)\n"
        "      --malloc-arenas N         glibc malloc arenas, bounding memory kept by connection\n"
        "                                threads (default 2; 0 = glibc's default, 8 per core)\n"
        "      --request-timeout SEC     deadline for a request, queueing included (default 300)\n"
        "      --drain-timeout SEC       on SIGTERM/SIGINT, wait this long for requests in\n"
        "                                flight, then exit 0 (default 60)\n"
        "auth (/health stays public):\n"
        "      --api-key KEY             require 'Authorization: Bearer KEY' (repeatable)\n"
        "      --api-key-file FILE       keys, one per line ('#' starts a comment)\n"
        "request limits:\n"
        "      --max-body-bytes N        request body size, 413 above (default 32M)\n"
        "      --max-inflight-bytes N    request bodies held at once over all connections;\n"
        "                                a request that would pass it gets 429 (default 512M)\n"
        "      --max-items N             items per request (default 256)\n"
        "      --max-tokens-per-item N   prompt tokens of an item, template and image tokens\n"
        "                                included; more is a 400 unless the request sets\n"
        "                                \"truncate\": true (default 8192)\n"
        "      --max-request-tokens N    tokens summed over a request (default 300000)\n"
        "      --max-images-per-item N   (default 64)\n"
        "      --max-video-frames N      frames of one video part (default 64; its frames count\n"
        "                                against the image-token limits, not this image cap)\n"
        "      --max-pdf-pages N         pages of one PDF part, one result each (default 64)\n"
        "      --media-timeout S         wall clock of one video decode / PDF render (default 60)\n"
        "      --max-image-bytes N       encoded size of one image (default 16M)\n"
        "      --max-image-pixels N      width*height from the image header (default 64M)\n"
        "      --min-image-tokens N      the model's image resize range, in 28x28 tokens\n"
        "      --max-image-tokens N        (default 256 and 1280, as Ops-MM)\n"
        "batching and overload:\n"
        "      --max-batch-tokens N      prompt tokens per model call (default 8192 on the CPU,\n"
        "                                from GPU memory on a GPU, up to 32768)\n"
        "      --max-batch-image-tokens N  image tokens per model call (default 5120 on the CPU,\n"
        "                                from GPU memory on a GPU, up to 20480)\n"
        "      --max-batch-items N       items per model call (default 64; 256 on a GPU)\n"
        "      --max-queue-items N       items waiting for the model; requests that do not\n"
        "                                fit get 429 (default 1024)\n"
        "images (data: URIs and raw base64 are always accepted):\n"
        "      --image-dir DIR           accept file:// images below DIR\n"
        "      --allow-remote-images     fetch http(s) image URLs (off by default)\n"
        "      --remote-image-hosts LIST comma-separated allow-list, required with\n"
        "                                --allow-remote-images: 'example.com', '*.example.com'\n"
        "                                (subdomains), '*' (any host)\n"
        "      --remote-image-timeout SEC  whole-fetch timeout (default 5)\n"
        "other:\n"
        "      --quiet                   no per-request log lines\n"
        "      --no-ui                   no playground page at /ui\n"
        "  -h, --help                    this text\n");
}

/* ---- value parsers: every number is range-checked and the message names the option ---- */

static tkr_status parse_long(const char *opt, const char *s, long lo, long hi, long *out,
                             tkr_error *err) {
    char *end = NULL;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end)
        return tkr_fail(err, TKR_ERR_INVALID_ARG, "%s: '%s' is not an integer", opt, s);
    if (v < lo || v > hi)
        return tkr_fail(err, TKR_ERR_INVALID_ARG, "%s: %ld is out of range [%ld, %ld]", opt, v, lo,
                        hi);
    *out = v;
    return TKR_OK;
}

/* Sizes: a decimal integer with an optional K/M/G (x1024) suffix. */
static tkr_status parse_size(const char *opt, const char *s, unsigned long long lo,
                             unsigned long long hi, unsigned long long *out, tkr_error *err) {
    char *end = NULL;
    errno = 0;
    if (!isdigit((unsigned char)s[0]))
        return tkr_fail(err, TKR_ERR_INVALID_ARG, "%s: '%s' is not a size", opt, s);
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s) return tkr_fail(err, TKR_ERR_INVALID_ARG, "%s: '%s' is not a size", opt, s);
    unsigned long long mul = 1;
    if (*end) {
        switch (toupper((unsigned char)*end)) {
        case 'K': mul = 1ull << 10; break;
        case 'M': mul = 1ull << 20; break;
        case 'G': mul = 1ull << 30; break;
        default: return tkr_fail(err, TKR_ERR_INVALID_ARG, "%s: '%s' is not a size", opt, s);
        }
        if (end[1]) return tkr_fail(err, TKR_ERR_INVALID_ARG, "%s: '%s' is not a size", opt, s);
    }
    if (v > ULLONG_MAX / mul)
        return tkr_fail(err, TKR_ERR_INVALID_ARG, "%s: '%s' is too large", opt, s);
    v *= mul;
    if (v < lo || v > hi)
        return tkr_fail(err, TKR_ERR_INVALID_ARG, "%s: %llu is out of range [%llu, %llu]", opt, v,
                        lo, hi);
    *out = v;
    return TKR_OK;
}

static tkr_status parse_seconds(const char *opt, const char *s, double lo, double hi, double *out,
                                tkr_error *err) {
    char *end = NULL;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(v))
        return tkr_fail(err, TKR_ERR_INVALID_ARG, "%s: '%s' is not a number of seconds", opt, s);
    if (v < lo || v > hi)
        return tkr_fail(err, TKR_ERR_INVALID_ARG, "%s: %g is out of range [%g, %g] seconds", opt, v,
                        lo, hi);
    *out = v;
    return TKR_OK;
}

tkr_status tkr_server_config_add_key(tkr_server_config *cfg, const char *key, size_t len,
                                     tkr_error *err) {
    if (len == 0) return tkr_fail(err, TKR_ERR_INVALID_ARG, "an API key is empty");
    if (len > API_KEY_MAX_LEN)
        return tkr_fail(err, TKR_ERR_INVALID_ARG, "an API key is longer than %d bytes",
                        API_KEY_MAX_LEN);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)key[i];
        if (c <= 0x20 || c == 0x7f)
            return tkr_fail(err, TKR_ERR_INVALID_ARG,
                            "an API key contains a space or control character (byte %zu)", i);
    }
    if (cfg->n_api_keys >= MAX_API_KEYS)
        return tkr_fail(err, TKR_ERR_LIMIT, "more than %d API keys", MAX_API_KEYS);
    char **keys = realloc(cfg->api_keys, sizeof(char *) * (size_t)(cfg->n_api_keys + 1));
    if (!keys) return tkr_fail(err, TKR_ERR_NOMEM, "out of memory for API keys");
    cfg->api_keys = keys;
    char *k = malloc(len + 1);
    if (!k) return tkr_fail(err, TKR_ERR_NOMEM, "out of memory for API keys");
    memcpy(k, key, len);
    k[len] = '\0';
    cfg->api_keys[cfg->n_api_keys++] = k;
    return TKR_OK;
}

tkr_status tkr_server_config_add_remote_host(tkr_server_config *cfg, const char *host, size_t len,
                                             tkr_error *err) {
    if (len == 0 || len > 253)
        return tkr_fail(err, TKR_ERR_INVALID_ARG, "--remote-image-hosts: empty or overlong host");
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)host[i];
        if (!(isalnum(c) || c == '.' || c == '-' || c == '*' || c == ':' || c == '[' || c == ']'))
            return tkr_fail(err, TKR_ERR_INVALID_ARG,
                            "--remote-image-hosts: bad character '%c' in '%.*s'", c, (int)len, host);
    }
    if (memchr(host, '*', len) && !(len == 1 || (len > 2 && host[0] == '*' && host[1] == '.' &&
                                                 !memchr(host + 1, '*', len - 1))))
        return tkr_fail(err, TKR_ERR_INVALID_ARG,
                        "--remote-image-hosts: '%.*s': '*' is only allowed alone or as '*.domain'",
                        (int)len, host);
    if (cfg->n_remote_hosts >= MAX_REMOTE_HOSTS)
        return tkr_fail(err, TKR_ERR_LIMIT, "more than %d remote image hosts", MAX_REMOTE_HOSTS);
    char **hosts = realloc(cfg->remote_hosts, sizeof(char *) * (size_t)(cfg->n_remote_hosts + 1));
    if (!hosts) return tkr_fail(err, TKR_ERR_NOMEM, "out of memory for the host list");
    cfg->remote_hosts = hosts;
    char *h = malloc(len + 1);
    if (!h) return tkr_fail(err, TKR_ERR_NOMEM, "out of memory for the host list");
    for (size_t i = 0; i < len; i++) h[i] = (char)tolower((unsigned char)host[i]);
    h[len] = '\0';
    cfg->remote_hosts[cfg->n_remote_hosts++] = h;
    return TKR_OK;
}

/* One key per line; blank lines and lines starting with '#' are skipped; surrounding
 * whitespace (including a Windows '\r') is trimmed. The keys themselves never reach a message. */
static tkr_status load_key_file(tkr_server_config *cfg, const char *path, tkr_error *err) {
    char *text = NULL;
    size_t len = 0;
    tkr_status st = tkr_read_file(path, KEY_FILE_MAX_BYTES, &text, &len, err);
    if (st != TKR_OK) {
        tkr_error_prefix(err, "--api-key-file: ");
        return st;
    }
    int before = cfg->n_api_keys, line_no = 0;
    size_t pos = 0;
    while (pos < len && st == TKR_OK) {
        size_t end = pos;
        while (end < len && text[end] != '\n') end++;
        line_no++;
        size_t a = pos, b = end;
        while (a < b && isspace((unsigned char)text[a])) a++;
        while (b > a && isspace((unsigned char)text[b - 1])) b--;
        if (b > a && text[a] != '#') {
            st = tkr_server_config_add_key(cfg, text + a, b - a, err);
            if (st != TKR_OK) tkr_error_prefix(err, "--api-key-file: %s line %d: ", path, line_no);
        }
        pos = end + 1;
    }
    free(text);
    if (st == TKR_OK && cfg->n_api_keys == before)
        st = tkr_fail(err, TKR_ERR_INVALID_ARG, "--api-key-file: %s holds no key", path);
    return st;
}

static tkr_status add_host_list(tkr_server_config *cfg, const char *list, tkr_error *err) {
    const char *p = list;
    while (*p) {
        const char *comma = strchr(p, ',');
        size_t n = comma ? (size_t)(comma - p) : strlen(p);
        while (n && isspace((unsigned char)*p)) { p++; n--; }
        while (n && isspace((unsigned char)p[n - 1])) n--;
        tkr_status st = tkr_server_config_add_remote_host(cfg, p, n, err);
        if (st != TKR_OK) return st;
        if (!comma) break;
        p = comma + 1;
    }
    return TKR_OK;
}

tkr_status tkr_server_config_validate(const tkr_server_config *c, tkr_error *err) {
    if (!c->model_dir || !*c->model_dir)
        return tkr_fail(err, TKR_ERR_INVALID_ARG, "-m/--model DIR is required");
    if (c->max_items_per_request > c->max_queue_items)
        return tkr_fail(err, TKR_ERR_INVALID_ARG,
                        "--max-items (%d) must not exceed --max-queue-items (%d): such a request "
                        "could never be queued", c->max_items_per_request, c->max_queue_items);
    if (c->max_body_bytes > c->max_inflight_bytes)
        return tkr_fail(err, TKR_ERR_INVALID_ARG,
                        "--max-body-bytes (%zu) must not exceed --max-inflight-bytes (%zu)",
                        c->max_body_bytes, c->max_inflight_bytes);
    if (c->min_image_tokens > c->max_image_tokens)
        return tkr_fail(err, TKR_ERR_INVALID_ARG,
                        "--min-image-tokens (%d) is larger than --max-image-tokens (%d)",
                        c->min_image_tokens, c->max_image_tokens);
    if ((long)c->max_tokens_per_item > c->max_request_tokens)
        return tkr_fail(err, TKR_ERR_INVALID_ARG,
                        "--max-tokens-per-item (%d) is larger than --max-request-tokens (%ld)",
                        c->max_tokens_per_item, c->max_request_tokens);
    if (c->allow_remote_images && c->n_remote_hosts == 0)
        return tkr_fail(err, TKR_ERR_INVALID_ARG,
                        "--allow-remote-images needs --remote-image-hosts (use '*' to allow any "
                        "host, knowing that the server then fetches whatever URL clients send)");
    if (!c->allow_remote_images && c->n_remote_hosts > 0)
        return tkr_fail(err, TKR_ERR_INVALID_ARG,
                        "--remote-image-hosts is set but --allow-remote-images is not");
    return TKR_OK;
}

/* The option table: one row per option, its kind says how the value is parsed and where it
 * goes. Ranges keep every number sane before anything uses it. */
typedef enum { K_FLAG, K_STRING, K_INT, K_LONG, K_SIZE, K_ULL, K_SECONDS, K_KEY, K_KEYFILE, K_HOSTS } opt_kind;

typedef struct {
    const char *name, *short_name;
    opt_kind kind;
    size_t offset;        /* of the field in tkr_server_config (unused for keys and hosts) */
    double lo, hi;
} opt_spec;

#define F(field) offsetof(tkr_server_config, field)
static const opt_spec options[] = {
    {"--model", "-m", K_STRING, F(model_dir), 0, 0},
    {"--model-name", NULL, K_STRING, F(model_name), 0, 0},
    {"--mmproj", NULL, K_STRING, F(mmproj), 0, 0},
    {"--threads", "-t", K_INT, F(n_threads), 0, 4096},
    {"--device", NULL, K_STRING, F(device), 0, 0},
    {"--precision", NULL, K_STRING, F(precision), 0, 0},
    {"--fast-bf16", NULL, K_FLAG, F(fast_bf16), 0, 0},
    {"--release-vision-weights", NULL, K_FLAG, F(release_vision_weights), 0, 0},
    {"--warmup", NULL, K_FLAG, F(warmup), 0, 0},
    {"--no-warmup", NULL, K_FLAG, F(no_warmup), 0, 0},
    {"--host", NULL, K_STRING, F(host), 0, 0},
    {"--port", NULL, K_INT, F(port), 0, 65535},
    {"--max-connections", NULL, K_INT, F(max_connections), 1, 65536},
    {"--max-connections-per-ip", NULL, K_INT, F(max_connections_per_ip), 0, 65536},
    {"--idle-timeout", NULL, K_INT, F(idle_timeout_s), 1, 86400},
    {"--read-timeout", NULL, K_SECONDS, F(read_timeout_s), 0.01, 86400},
    {"--header-timeout", NULL, K_SECONDS, F(header_timeout_s), 0.01, 86400},
    {"--malloc-arenas", NULL, K_INT, F(malloc_arenas), 0, 1024},
    {"--request-timeout", NULL, K_SECONDS, F(request_timeout_s), 0.01, 86400},
    {"--drain-timeout", NULL, K_SECONDS, F(drain_timeout_s), 0, 86400},
    {"--api-key", NULL, K_KEY, 0, 0, 0},
    {"--api-key-file", NULL, K_KEYFILE, 0, 0, 0},
    {"--max-body-bytes", NULL, K_SIZE, F(max_body_bytes), 1024, 4294967296.0},
    {"--max-inflight-bytes", NULL, K_SIZE, F(max_inflight_bytes), 1024, 1099511627776.0},
    {"--max-items", NULL, K_INT, F(max_items_per_request), 1, 1 << 20},
    {"--max-tokens-per-item", NULL, K_INT, F(max_tokens_per_item), 16, 1 << 20},
    {"--max-request-tokens", NULL, K_LONG, F(max_request_tokens), 16, 1 << 30},
    {"--max-images-per-item", NULL, K_INT, F(max_images_per_item), 0, 1024},
    {"--max-video-frames", NULL, K_INT, F(max_video_frames), 1, 4096},
    {"--max-pdf-pages", NULL, K_INT, F(max_pdf_pages), 1, 1 << 16},
    {"--media-timeout", NULL, K_SECONDS, F(media_timeout_s), 0.01, 86400},
    {"--max-image-bytes", NULL, K_SIZE, F(max_image_bytes), 64, 2147483648.0},
    {"--max-image-pixels", NULL, K_ULL, F(max_image_pixels), 1, 68719476736.0},
    {"--min-image-tokens", NULL, K_INT, F(min_image_tokens), 1, 1 << 20},
    {"--max-image-tokens", NULL, K_INT, F(max_image_tokens), 1, 1 << 20},
    {"--max-batch-tokens", NULL, K_INT, F(max_batch_tokens), 1, 1 << 24},
    {"--max-batch-image-tokens", NULL, K_INT, F(max_batch_image_tokens), 1, 1 << 24},
    {"--max-batch-items", NULL, K_INT, F(max_batch_items), 1, 1 << 16},
    {"--max-queue-items", NULL, K_INT, F(max_queue_items), 1, 1 << 24},
    {"--image-dir", NULL, K_STRING, F(image_dir), 0, 0},
    {"--allow-remote-images", NULL, K_FLAG, F(allow_remote_images), 0, 0},
    {"--remote-image-hosts", NULL, K_HOSTS, 0, 0, 0},
    {"--remote-image-timeout", NULL, K_SECONDS, F(remote_timeout_s), 0.01, 600},
    {"--quiet", NULL, K_FLAG, F(quiet), 0, 0},
    {"--no-ui", NULL, K_FLAG, F(no_ui), 0, 0},
};
#undef F

/* Stores one option's value into the config. */
static tkr_status apply_option(tkr_server_config *c, const opt_spec *o, const char *v,
                               tkr_error *err) {
    char *field = (char *)c + o->offset;
    long lv = 0;
    unsigned long long uv = 0;
    double dv = 0;
    tkr_status st = TKR_OK;
    switch (o->kind) {
    case K_FLAG: *(bool *)field = true; break;
    case K_STRING:
        if (!*v || strlen(v) > 4096)
            return tkr_fail(err, TKR_ERR_INVALID_ARG, "%s: empty or over 4096 bytes", o->name);
        *(const char **)field = v;
        break;
    case K_INT:
        if ((st = parse_long(o->name, v, (long)o->lo, (long)o->hi, &lv, err)) == TKR_OK)
            *(int *)field = (int)lv;
        break;
    case K_LONG:
        if ((st = parse_long(o->name, v, (long)o->lo, (long)o->hi, &lv, err)) == TKR_OK)
            *(long *)field = lv;
        break;
    case K_SIZE:
        if ((st = parse_size(o->name, v, (unsigned long long)o->lo, (unsigned long long)o->hi, &uv,
                             err)) == TKR_OK)
            *(size_t *)field = (size_t)uv;
        break;
    case K_ULL:
        if ((st = parse_size(o->name, v, (unsigned long long)o->lo, (unsigned long long)o->hi, &uv,
                             err)) == TKR_OK)
            *(unsigned long long *)field = uv;
        break;
    case K_SECONDS:
        if ((st = parse_seconds(o->name, v, o->lo, o->hi, &dv, err)) == TKR_OK)
            *(double *)field = dv;
        break;
    case K_KEY: st = tkr_server_config_add_key(c, v, strlen(v), err);
        if (st != TKR_OK) tkr_error_prefix(err, "--api-key: ");
        break;
    case K_KEYFILE: st = load_key_file(c, v, err); break;
    case K_HOSTS: st = add_host_list(c, v, err); break;
    }
    return st;
}

tkr_status tkr_server_config_parse(tkr_server_config *c, int argc, char **argv, bool *help,
                                   tkr_error *err) {
    *help = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { *help = true; return TKR_OK; }
        const opt_spec *o = NULL;
        const char *value = NULL;
        for (size_t k = 0; k < sizeof options / sizeof options[0] && !o; k++) {
            size_t n = strlen(options[k].name);
            if (!strncmp(a, options[k].name, n) && a[n] == '=' && options[k].kind != K_FLAG) {
                o = &options[k];
                value = a + n + 1;
            } else if (!strcmp(a, options[k].name) ||
                       (options[k].short_name && !strcmp(a, options[k].short_name))) {
                o = &options[k];
            }
        }
        if (!o) return tkr_fail(err, TKR_ERR_INVALID_ARG, "unknown option '%s' (see --help)", a);
        if (!value && o->kind != K_FLAG) {
            if (i + 1 >= argc) return tkr_fail(err, TKR_ERR_INVALID_ARG, "%s needs a value", o->name);
            value = argv[++i];
        }
        tkr_status st = apply_option(c, o, value, err);
        if (st != TKR_OK) return st;
    }
    return tkr_server_config_validate(c, err);
}

void tkr_server_config_free(tkr_server_config *c) {
    for (int i = 0; i < c->n_api_keys; i++) {
        /* keys are secrets: wipe before freeing */
        volatile char *k = c->api_keys[i];
        for (size_t j = 0; k[j]; j++) k[j] = 0;
        free(c->api_keys[i]);
    }
    free(c->api_keys);
    for (int i = 0; i < c->n_remote_hosts; i++) free(c->remote_hosts[i]);
    free(c->remote_hosts);
    c->api_keys = NULL;
    c->remote_hosts = NULL;
    c->n_api_keys = c->n_remote_hosts = 0;
}
