/* api_embeddings.c - see api_embeddings.h. */
#include "server/api_embeddings.h"
#include "server/image_probe.h"
#include "util/base64.h"
#include "util/error.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int tkr_api_error_set(tkr_api_error *e, int status, const char *type, const char *code,
                      const char *param, const char *fmt, ...) {
    e->status = status;
    e->type = type;
    e->code = code;
    snprintf(e->param, sizeof e->param, "%s", param ? param : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof e->message, fmt, ap);
    va_end(ap);
    return status;
}

/* ---- parsing ---------------------------------------------------------------------------- */

typedef struct {
    const tkr_server_config *cfg;
    const tkr_engine *eng;
    const tkr_image_source_policy *img;
    tkr_api_error *e;
    const char *instruction;    /* request-level, NULL = engine default */
    bool truncate;
} parse_ctx;

#define BAD(ctx, param, ...)                                                                    \
    (tkr_api_error_set((ctx)->e, 400, "invalid_request_error", NULL, (param), __VA_ARGS__),     \
     TKR_ERR_INVALID_ARG)

static tkr_status out_of_memory(parse_ctx *c) {
    tkr_api_error_set(c->e, 500, "server_error", NULL, NULL, "out of memory");
    return TKR_ERR_NOMEM;
}

/* A token array: integers in [0, vocab) (or [0, 2^31) when the vocabulary size is unknown). */
static tkr_status parse_token_array(parse_ctx *c, const json_t *arr, const char *param,
                                    tkr_api_item *it) {
    size_t n = json_array_size(arr);
    if (n == 0) return BAD(c, param, "%s is an empty token array", param);
    if (n > (size_t)c->cfg->max_tokens_per_item && !c->truncate)
        return BAD(c, param, "%s has %zu tokens, over the limit of %d per item (send "
                   "\"truncate\": true to cut it)", param, n, c->cfg->max_tokens_per_item);
    if (n > (size_t)c->cfg->max_tokens_per_item) n = (size_t)c->cfg->max_tokens_per_item;
    it->ids_owned = malloc(sizeof(int32_t) * n);
    if (!it->ids_owned) return out_of_memory(c);
    long long hi = c->eng->vocab_size > 0 ? c->eng->vocab_size : 2147483648LL;
    for (size_t i = 0; i < n; i++) {
        const json_t *v = json_array_get(arr, i);
        if (!json_is_integer(v))
            return BAD(c, param, "%s[%zu] is not an integer token id", param, i);
        json_int_t id = json_integer_value(v);
        if (id < 0 || id >= hi)
            return BAD(c, param, "%s[%zu] = %lld is not a token id of this model (0..%lld)", param,
                       i, (long long)id, hi - 1);
        it->ids_owned[i] = (int32_t)id;
    }
    /* ids past the per-item limit can never be used: dropped here (only when truncation was
     * asked for), the engine cuts the rest of the excess */
    it->truncated = json_array_size(arr) > n;
    it->item.truncate = it->truncated;
    it->item.token_ids = it->ids_owned;
    it->item.n_token_ids = n;
    return TKR_OK;
}

/* Loads one image reference, probes its header and counts its tokens. */
static tkr_status add_image(parse_ctx *c, tkr_api_item *it, const json_t *ref, const char *param) {
    if (!json_is_string(ref)) return BAD(c, param, "%s must be a string (URL, data: URI or base64)", param);
    if (!c->eng->has_vision) return BAD(c, param, "%s: the model '%s' does not take images", param, c->eng->model_name);
    int k = it->item.n_images;
    uint8_t *data = NULL;
    size_t size = 0;
    tkr_error err;
    tkr_error_clear(&err);
    tkr_status st = tkr_image_source_load(c->img, json_string_value(ref), json_string_length(ref),
                                          &data, &size, &err);
    if (st == TKR_ERR_NOMEM) return out_of_memory(c);
    if (st != TKR_OK) return BAD(c, param, "%s: %s", param, err.message);
    it->image_data[k] = data;
    it->images[k].path = NULL;
    it->images[k].data = data;
    it->images[k].size = size;
    it->item.n_images = k + 1;
    tkr_image_format fmt;
    int w = 0, h = 0;
    if (tkr_image_probe(data, size, &fmt, &w, &h, &err) != TKR_OK)
        return BAD(c, param, "%s: %s", param, err.message);
    unsigned long long px = (unsigned long long)w * (unsigned long long)h;
    if (px > c->cfg->max_image_pixels)
        return BAD(c, param, "%s: image is %dx%d = %llu pixels, over the limit of %llu", param, w,
                   h, px, c->cfg->max_image_pixels);
    int tokens = c->eng->image_tokens ? c->eng->image_tokens(c->eng->impl, w, h)
                                      : c->cfg->max_image_tokens;
    it->image_tokens += tokens;
    return TKR_OK;
}

static tkr_status alloc_images(parse_ctx *c, tkr_api_item *it, size_t n, const char *param) {
    if (n == 0) return TKR_OK;
    if (n > (size_t)c->cfg->max_images_per_item)
        return BAD(c, param, "%s has %zu images, over the limit of %d per item", param, n,
                   c->cfg->max_images_per_item);
    it->images = calloc(n, sizeof *it->images);
    it->image_data = calloc(n, sizeof *it->image_data);
    if (!it->images || !it->image_data) return out_of_memory(c);
    it->item.images = it->images;
    return TKR_OK;
}

/* Sets the item's text from n_parts strings: one is used in place, several are joined with a
 * newline (the Ops-MM prompt puts every image before the text, so part order across kinds is
 * not kept; the order among text parts is). */
static tkr_status set_text(parse_ctx *c, tkr_api_item *it, const json_t **parts, size_t n_parts) {
    if (n_parts == 0) return TKR_OK;
    if (n_parts == 1) {
        it->item.text = json_string_value(parts[0]);
        it->item.text_len = json_string_length(parts[0]);
        return TKR_OK;
    }
    size_t total = 0;
    for (size_t i = 0; i < n_parts; i++) total += json_string_length(parts[i]) + 1;
    it->text_owned = malloc(total);
    if (!it->text_owned) return out_of_memory(c);
    size_t pos = 0;
    for (size_t i = 0; i < n_parts; i++) {
        size_t l = json_string_length(parts[i]);
        if (i) it->text_owned[pos++] = '\n';
        memcpy(it->text_owned + pos, json_string_value(parts[i]), l);
        pos += l;
    }
    it->text_owned[pos] = '\0';
    it->item.text = it->text_owned;
    it->item.text_len = pos;
    return TKR_OK;
}

/* {"content":[parts...]}: text and image_url parts, one vector for the whole item. */
static tkr_status parse_content(parse_ctx *c, tkr_api_item *it, const json_t *content,
                                const char *param) {
    char p[128];
    if (!json_is_array(content) || json_array_size(content) == 0)
        return BAD(c, param, "%s.content must be a non-empty array of parts", param);
    size_t n = json_array_size(content), n_img = 0, n_txt = 0;
    if (n > 4096) return BAD(c, param, "%s.content has more than 4096 parts", param);
    for (size_t i = 0; i < n; i++) {
        const json_t *part = json_array_get(content, i);
        snprintf(p, sizeof p, "%s.content[%zu]", param, i);
        const char *type = json_string_value(json_object_get(part, "type"));
        if (!json_is_object(part) || !type)
            return BAD(c, p, "%s must be an object with a \"type\"", p);
        if (!strcmp(type, "text")) {
            if (!json_is_string(json_object_get(part, "text")))
                return BAD(c, p, "%s.text must be a string", p);
            n_txt++;
        } else if (!strcmp(type, "image_url")) {
            n_img++;
        } else {
            return BAD(c, p, "%s.type '%.40s' is not supported (text, image_url)", p, type);
        }
    }
    tkr_status st = alloc_images(c, it, n_img, param);
    const json_t **texts = n_txt ? malloc(sizeof(json_t *) * n_txt) : NULL;
    if (st == TKR_OK && n_txt && !texts) st = out_of_memory(c);
    size_t t = 0;
    for (size_t i = 0; i < n && st == TKR_OK; i++) {
        const json_t *part = json_array_get(content, i);
        const char *type = json_string_value(json_object_get(part, "type"));
        if (!strcmp(type, "text")) {
            texts[t++] = json_object_get(part, "text");
            continue;
        }
        const json_t *iu = json_object_get(part, "image_url");
        snprintf(p, sizeof p, "%s.content[%zu].image_url", param, i);
        if (json_is_object(iu)) {
            iu = json_object_get(iu, "url");
            snprintf(p, sizeof p, "%s.content[%zu].image_url.url", param, i);
        }
        if (!iu) st = BAD(c, p, "%s is missing", p);
        else st = add_image(c, it, iu, p);
    }
    if (st == TKR_OK) st = set_text(c, it, texts, n_txt);
    free(texts);
    return st;
}

/* One element of "input" that is an object: the content form or the text/image form. */
static tkr_status parse_item_object(parse_ctx *c, tkr_api_item *it, const json_t *obj,
                                    const char *param) {
    char p[128];
    const json_t *instr = json_object_get(obj, "instruction");
    if (instr && !json_is_null(instr)) {
        if (!json_is_string(instr)) return BAD(c, param, "%s.instruction must be a string", param);
        it->item.instruction = json_string_value(instr);
    }
    const json_t *content = json_object_get(obj, "content");
    if (content) {
        if (json_object_get(obj, "text") || json_object_get(obj, "image"))
            return BAD(c, param, "%s: use either \"content\" or \"text\"/\"image\", not both", param);
        return parse_content(c, it, content, param);
    }
    const json_t *text = json_object_get(obj, "text"), *image = json_object_get(obj, "image");
    if (!text && !image)
        return BAD(c, param, "%s needs \"content\", or \"text\" and/or \"image\"", param);
    if (text && !json_is_string(text)) return BAD(c, param, "%s.text must be a string", param);
    tkr_status st = TKR_OK;
    if (image) {
        size_t n = json_is_array(image) ? json_array_size(image) : 1;
        snprintf(p, sizeof p, "%s.image", param);
        if (json_is_array(image) && n == 0) return BAD(c, p, "%s is an empty array", p);
        if ((st = alloc_images(c, it, n, param)) != TKR_OK) return st;
        for (size_t i = 0; i < n && st == TKR_OK; i++) {
            if (json_is_array(image)) snprintf(p, sizeof p, "%s.image[%zu]", param, i);
            st = add_image(c, it, json_is_array(image) ? json_array_get(image, i) : image, p);
        }
    }
    if (st == TKR_OK && text) st = set_text(c, it, &text, 1);
    return st;
}

/* Counts the item's prompt tokens (template + text + images) and applies the per-item limit:
 * an over-long item is a 400, or, when the request asked for truncation and the text can absorb
 * the excess, goes to the engine with item.truncate set. The engine then cuts the end of the
 * text and keeps the template and images, exactly as `tkr-embed embed --truncate` does. */
static tkr_status count_and_limit(parse_ctx *c, tkr_api_item *it, const char *param) {
    const tkr_engine *eng = c->eng;
    tkr_error err;
    tkr_error_clear(&err);
    if (!it->item.instruction) it->item.instruction = c->instruction;
    if (!it->item.token_ids && it->item.text_len == 0 && it->item.n_images == 0)
        return BAD(c, param, "%s is empty", param);
    int tmpl = 0;
    if (eng->template_tokens &&
        eng->template_tokens(eng->impl, it->item.instruction, it->item.n_images, &tmpl, &err) != TKR_OK)
        return BAD(c, param, "%s: %s", param, err.message);
    long limit = c->cfg->max_tokens_per_item;
    long fixed = (long)tmpl + it->image_tokens;   /* what truncating the text cannot reduce */
    size_t n_text = it->item.n_token_ids;
    if (!it->item.token_ids && it->item.text_len > 0) {
        if (eng->tokenize) {
            int32_t *ids = NULL;
            tkr_status st = eng->tokenize(eng->impl, it->item.text, it->item.text_len, &ids, &n_text, &err);
            free(ids);
            if (st == TKR_ERR_NOMEM) return out_of_memory(c);
            if (st != TKR_OK) return BAD(c, param, "%s: %s", param, err.message);
        } else {
            n_text = it->item.text_len;   /* byte-level BPE: never more tokens than bytes */
        }
    }
    long total = fixed + (long)n_text;
    if (total > limit) {
        if (!c->truncate || fixed >= limit || n_text == 0)
            return BAD(c, param, "%s has %ld prompt tokens, over the limit of %ld per item%s", param,
                       total, limit,
                       !c->truncate ? " (send \"truncate\": true to cut the text)"
                                    : " even with its text cut (template and images alone are too long)");
        it->item.truncate = true;
        it->truncated = true;
        total = limit;
    }
    it->est_tokens = (int)total;
    return TKR_OK;
}

/* One element of input (or input itself when it is a string or a single token array). */
static tkr_status parse_item(parse_ctx *c, tkr_api_item *it, const json_t *v, const char *param) {
    /* all fields zero: no text, no ids, no images, default instruction (what tkr_item_default
     * gives; spelled out here so that this module needs nothing of the model library) */
    memset(&it->item, 0, sizeof it->item);
    tkr_status st;
    if (json_is_string(v)) {
        it->item.text = json_string_value(v);
        it->item.text_len = json_string_length(v);
        st = TKR_OK;
    } else if (json_is_array(v)) {
        st = parse_token_array(c, v, param, it);
    } else if (json_is_object(v)) {
        st = parse_item_object(c, it, v, param);
    } else {
        st = BAD(c, param, "%s must be a string, a token array or an item object", param);
    }
    if (st == TKR_OK) st = count_and_limit(c, it, param);
    return st;
}

/* Reads an optional field that must have one JSON type (null counts as absent). */
static const json_t *opt_field(const json_t *root, const char *name) {
    const json_t *v = json_object_get(root, name);
    return json_is_null(v) ? NULL : v;
}

tkr_status tkr_api_parse_embeddings(const tkr_server_config *cfg, const tkr_engine *engine,
                                    const tkr_image_source_policy *images, const char *body,
                                    size_t len, tkr_api_request *req, tkr_api_error *e) {
    memset(req, 0, sizeof *req);
    parse_ctx ctx = {cfg, engine, images, e, NULL, false};
    parse_ctx *c = &ctx;
    json_error_t jerr;
    json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        return BAD(c, NULL, "the body is not valid JSON: %s (line %d, column %d)", jerr.text,
                   jerr.line, jerr.column);
    req->root = root;
    tkr_status st = TKR_OK;
    if (!json_is_object(root)) { st = BAD(c, NULL, "the body must be a JSON object"); goto fail; }

    const json_t *model = json_object_get(root, "model");
    if (!json_is_string(model)) {
        st = BAD(c, "model", model ? "model must be a string" : "model is required");
        goto fail;
    }
    const json_t *fmt = opt_field(root, "encoding_format");
    if (fmt) {
        const char *f = json_string_value(fmt);
        if (f && !strcmp(f, "base64")) req->base64 = true;
        else if (!f || strcmp(f, "float") != 0) {
            st = BAD(c, "encoding_format", "encoding_format must be \"float\" or \"base64\"");
            goto fail;
        }
    }
    const json_t *dims = opt_field(root, "dimensions");
    if (dims) {
        if (!json_is_integer(dims) || json_integer_value(dims) < 1 ||
            json_integer_value(dims) > engine->dim) {
            st = BAD(c, "dimensions", "dimensions must be an integer from 1 to %d for this model",
                     engine->dim);
            goto fail;
        }
        req->dimensions = (int)json_integer_value(dims);
    }
    const json_t *user = opt_field(root, "user");
    if (user && !json_is_string(user)) { st = BAD(c, "user", "user must be a string"); goto fail; }
    const json_t *instr = opt_field(root, "instruction");
    if (instr) {
        if (!json_is_string(instr)) { st = BAD(c, "instruction", "instruction must be a string"); goto fail; }
        ctx.instruction = json_string_value(instr);
    }
    const json_t *trunc = opt_field(root, "truncate");
    if (trunc) {
        if (!json_is_boolean(trunc)) { st = BAD(c, "truncate", "truncate must be true or false"); goto fail; }
        ctx.truncate = req->truncate = json_is_true(trunc);
    }

    const json_t *input = json_object_get(root, "input");
    if (!input || json_is_null(input)) { st = BAD(c, "input", "input is required"); goto fail; }
    /* input is one item when it is a string or a flat token array, else a list of items */
    bool single = json_is_string(input) ||
                  (json_is_array(input) && json_is_integer(json_array_get(input, 0)));
    if (!single && !json_is_array(input)) {
        st = BAD(c, "input", "input must be a string, an array of strings, an array of token ids, "
                 "an array of token-id arrays, or an array of item objects");
        goto fail;
    }
    req->single_input = single;
    size_t n = single ? 1 : json_array_size(input);
    if (n == 0) { st = BAD(c, "input", "input is an empty array"); goto fail; }
    if (n > (size_t)cfg->max_items_per_request) {
        st = BAD(c, "input", "input has %zu items, over the limit of %d per request", n,
                 cfg->max_items_per_request);
        goto fail;
    }
    req->items = calloc(n, sizeof *req->items);
    if (!req->items) { st = out_of_memory(c); goto fail; }
    req->n_items = (int)n;
    for (size_t i = 0; i < n; i++) {
        char param[64];
        const json_t *v = single ? input : json_array_get(input, i);
        if (single) snprintf(param, sizeof param, "input");
        else snprintf(param, sizeof param, "input[%zu]", i);
        if (!single && json_is_integer(v)) {
            st = BAD(c, param, "%s: a token array must contain only integers", param);
            goto fail;
        }
        if ((st = parse_item(c, &req->items[i], v, param)) != TKR_OK) goto fail;
        tkr_api_item *it = &req->items[i];
        req->est_tokens += it->est_tokens;
        req->n_images += it->item.n_images;
        req->n_truncated += it->truncated;
        if (req->est_tokens > cfg->max_request_tokens) {
            st = BAD(c, "input", "the request has more than %ld prompt tokens in all (limit "
                     "reached at input[%zu])", cfg->max_request_tokens, i);
            goto fail;
        }
    }
    return TKR_OK;
fail:
    tkr_api_request_free(engine, req);
    return st;
}

/* How errors name item i: "input" when input was a single string or token array. */
static void item_param(const tkr_api_request *req, int i, char *buf, size_t cap) {
    if (req->single_input) snprintf(buf, cap, "input");
    else snprintf(buf, cap, "input[%d]", i);
}

tkr_status tkr_api_prepare(const tkr_engine *engine, tkr_api_request *req, tkr_api_error *e) {
    if (!engine->prepare) return TKR_OK;
    for (int i = 0; i < req->n_items; i++) {
        tkr_error err;
        tkr_error_clear(&err);
        tkr_status st = engine->prepare(engine->impl, &req->items[i].item, &req->items[i].prepared, &err);
        if (st != TKR_OK) {
            char param[64];
            item_param(req, i, param, sizeof param);
            if (st == TKR_ERR_NOMEM || st == TKR_ERR_INTERNAL)
                tkr_api_error_set(e, 500, "server_error", NULL, param, "%s: %s", param, err.message);
            else
                tkr_api_error_set(e, 400, "invalid_request_error", NULL, param, "%s: %s", param, err.message);
            return st;
        }
    }
    return TKR_OK;
}

void tkr_api_request_free(const tkr_engine *engine, tkr_api_request *req) {
    for (int i = 0; req->items && i < req->n_items; i++) {
        tkr_api_item *it = &req->items[i];
        if (it->prepared && engine && engine->release) engine->release(engine->impl, it->prepared);
        for (int k = 0; it->image_data && k < it->item.n_images; k++) free(it->image_data[k]);
        free(it->image_data);
        free(it->images);
        free(it->text_owned);
        free(it->ids_owned);
    }
    free(req->items);
    if (req->root) json_decref(req->root);
    memset(req, 0, sizeof *req);
}

tkr_status tkr_api_check_results(const tkr_api_request *req, const tkr_result *results,
                                 tkr_api_error *e) {
    for (int i = 0; i < req->n_items; i++) {
        const tkr_result *r = &results[i];
        if (r->status == TKR_OK) continue;
        char param[64];
        item_param(req, i, param, sizeof param);
        char msg[TKR_ERROR_MESSAGE_MAX];
        snprintf(msg, sizeof msg, "%s", r->message[0] ? r->message : tkr_status_name(r->status));
        if (r->status == TKR_ERR_NOMEM || r->status == TKR_ERR_INTERNAL)
            tkr_api_error_set(e, 500, "server_error", NULL, param, "%s: %s", param, msg);
        else
            tkr_api_error_set(e, 400, "invalid_request_error", NULL, param, "%s: %s", param, msg);
        return r->status;
    }
    return TKR_OK;
}

void tkr_api_reduce_dimensions(const float *in, int dim, int n_keep, float *out) {
    if (n_keep >= dim) {
        memcpy(out, in, sizeof(float) * (size_t)dim);
        return;
    }
    double ss = 0;
    for (int i = 0; i < n_keep; i++) ss += (double)in[i] * in[i];
    double inv = ss > 0 ? 1.0 / sqrt(ss) : 0;
    for (int i = 0; i < n_keep; i++) out[i] = (float)(in[i] * inv);
}

/* The embedding's bytes as little-endian float32 (what the OpenAI clients decode). */
static void write_base64(sbuf *out, const float *v, int n) {
    const uint16_t one = 1;
    bool little = *(const uint8_t *)&one == 1;
    size_t bytes = (size_t)n * 4, b64 = tkr_base64_encoded_size(bytes);
    uint8_t *raw = malloc(bytes ? bytes : 1);
    if (!raw || !b64 || !sbuf_reserve(out, b64 + 2)) { free(raw); out->failed = true; return; }
    memcpy(raw, v, bytes);
    if (!little)
        for (size_t i = 0; i < bytes; i += 4) {
            uint8_t t = raw[i]; raw[i] = raw[i + 3]; raw[i + 3] = t;
            t = raw[i + 1]; raw[i + 1] = raw[i + 2]; raw[i + 2] = t;
        }
    out->data[out->len++] = '"';
    tkr_base64_encode(raw, bytes, out->data + out->len);
    out->len += b64 - 1;
    out->data[out->len++] = '"';
    out->data[out->len] = '\0';
    free(raw);
}

bool tkr_api_write_response(const tkr_api_request *req, const char *model_name, int dim,
                            const float *vectors, const tkr_result *results, sbuf *out) {
    int n_keep = req->dimensions > 0 && req->dimensions < dim ? req->dimensions : dim;
    float *tmp = malloc(sizeof(float) * (size_t)dim);
    if (!tmp) return false;
    long prompt_tokens = 0;
    sbuf_puts(out, "{\"object\":\"list\",\"data\":[");
    for (int i = 0; i < req->n_items; i++) {
        tkr_api_reduce_dimensions(vectors + (size_t)i * (size_t)dim, dim, n_keep, tmp);
        sbuf_printf(out, "%s{\"object\":\"embedding\",\"index\":%d,\"embedding\":", i ? "," : "", i);
        if (req->base64) {
            write_base64(out, tmp, n_keep);
        } else {
            sbuf_append(out, "[", 1);
            for (int k = 0; k < n_keep; k++) {
                if (k) sbuf_append(out, ",", 1);
                sbuf_json_float(out, tmp[k]);
            }
            sbuf_append(out, "]", 1);
        }
        sbuf_append(out, "}", 1);
        prompt_tokens += results[i].prompt_tokens;
    }
    sbuf_puts(out, "],\"model\":");
    sbuf_json_string(out, model_name, strlen(model_name));
    sbuf_printf(out, ",\"usage\":{\"prompt_tokens\":%ld,\"total_tokens\":%ld}}", prompt_tokens,
                prompt_tokens);
    free(tmp);
    return sbuf_ok(out);
}

void tkr_api_write_error(const tkr_api_error *e, sbuf *out) {
    sbuf_puts(out, "{\"error\":{\"message\":");
    sbuf_json_string(out, e->message, strlen(e->message));
    sbuf_puts(out, ",\"type\":");
    sbuf_json_string(out, e->type ? e->type : "server_error", strlen(e->type ? e->type : "server_error"));
    sbuf_puts(out, ",\"param\":");
    if (e->param[0]) sbuf_json_string(out, e->param, strlen(e->param));
    else sbuf_puts(out, "null");
    sbuf_puts(out, ",\"code\":");
    if (e->code) sbuf_json_string(out, e->code, strlen(e->code));
    else sbuf_puts(out, "null");
    sbuf_puts(out, "}}");
}
