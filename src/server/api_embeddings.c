/* api_embeddings.c - see api_embeddings.h. */
#include "server/api_embeddings.h"
#include "server/image_probe.h"
#include "media/media.h"
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

/* The media limits the server applies to videos and PDFs (from its config). */
static tkr_media_limits media_limits(const parse_ctx *c) {
    tkr_media_limits l = tkr_media_default_limits();
    l.max_bytes = c->cfg->max_body_bytes;
    l.max_pixels = c->cfg->max_image_pixels;
    l.max_frames = c->cfg->max_video_frames > 0 ? c->cfg->max_video_frames : 64;
    l.max_pages = c->cfg->max_pdf_pages > 0 ? c->cfg->max_pdf_pages : 64;
    if (c->cfg->media_timeout_s > 0) l.timeout_s = c->cfg->media_timeout_s;
    if (l.pdf_cpu_s > (int)l.timeout_s + 1) l.pdf_cpu_s = (int)l.timeout_s + 1;
    return l;
}

/* A media part's data URI, decoded into *bytes (owned). Local paths and URLs are refused: the
 * server reads media only from the request. */
static tkr_status media_bytes(parse_ctx *c, const json_t *ref, const char *p, uint8_t **bytes,
                              size_t *n) {
    const char *s = json_string_value(ref);
    if (!s) return BAD(c, p, "%s must be a data: URI string", p);
    if (strncmp(s, "data:", 5) != 0)
        return BAD(c, p, "%s: send the file as a base64 data: URI (paths and URLs are not read)", p);
    tkr_media_bytes mb;
    tkr_error err;
    tkr_error_clear(&err);
    tkr_status st = tkr_media_bytes_open(s, NULL, 0, c->cfg->max_body_bytes, &mb, &err);
    if (st == TKR_ERR_NOMEM) return out_of_memory(c);
    if (st != TKR_OK) return BAD(c, p, "%s: %s", p, err.message);
    *bytes = mb.owned;
    *n = mb.size;
    return TKR_OK;
}

/* Reads an optional number field of obj (or of part when obj lacks it). */
static tkr_status opt_number(parse_ctx *c, const json_t *obj, const json_t *part, const char *key,
                             double lo, double hi, bool integer, const char *p, double *out) {
    const json_t *v = json_object_get(obj, key);
    if (!v && part) v = json_object_get(part, key);
    if (!v || json_is_null(v)) return TKR_OK;
    double d = json_number_value(v);
    if (!json_is_number(v) || d < lo || d > hi || (integer && d != (double)(long long)d))
        return BAD(c, p, "%s.%s must be %s from %g to %g", p, key, integer ? "an integer" : "a number",
                   lo, hi);
    *out = d;
    return TKR_OK;
}

/* {"type":"video_url","video_url":{"url":..,"fps"?,"max_frames"?,"num_frames"?}}: probes the
 * video (demux only) so that its frames count against the token limits before any decoding. */
static tkr_status add_video(parse_ctx *c, tkr_api_item *it, const json_t *part, const char *p) {
    if (!c->eng->has_vision) return BAD(c, p, "%s: the model '%s' does not take images", p, c->eng->model_name);
    const json_t *vu = json_object_get(part, "video_url");
    const json_t *url = json_is_object(vu) ? json_object_get(vu, "url") : vu;
    if (!url) return BAD(c, p, "%s.video_url is missing", p);
    double fps = 0, max_frames = 0, num_frames = 0;
    const json_t *o = json_is_object(vu) ? vu : part;
    tkr_status st = opt_number(c, o, part, "fps", 1e-6, 1000, false, p, &fps);
    if (st == TKR_OK) st = opt_number(c, o, part, "max_frames", 1, 4096, true, p, &max_frames);
    if (st == TKR_OK) st = opt_number(c, o, part, "num_frames", 1, 4096, true, p, &num_frames);
    size_t n = 0;
    if (st == TKR_OK) st = media_bytes(c, url, p, &it->video_data, &n);
    if (st != TKR_OK) return st;
    it->video = (tkr_video_input){.data = it->video_data, .size = n, .fps = fps,
                                  .max_frames = (int)max_frames, .num_frames = (int)num_frames};
    tkr_media_limits lim = media_limits(c);
    tkr_error err;
    tkr_error_clear(&err);
    int frames = 0, w = 0, h = 0;
    st = tkr_video_probe(&it->video, &lim, &frames, &w, &h, &err);
    if (st == TKR_ERR_NOMEM) return out_of_memory(c);
    if (st != TKR_OK) return BAD(c, p, "%s: %s", p, err.message);
    int per = c->eng->image_tokens ? c->eng->image_tokens(c->eng->impl, w, h) : c->cfg->max_image_tokens;
    it->n_video_frames = frames;
    it->image_tokens += frames * per;
    it->item.video = &it->video;   /* re-pointed once the item array is final */
    return TKR_OK;
}

/* {"type":"document","document":{"url":..}} or {"type":"file","file":{"file_data":..}}, with
 * "pages" and "dpi": renders the PDF now (a child process under the media limits); the pages
 * become items of their own in tkr_api_parse_embeddings. */
static tkr_status add_document(parse_ctx *c, tkr_api_item *it, const json_t *part, const char *type,
                               const char *p) {
    if (!c->eng->has_vision) return BAD(c, p, "%s: the model '%s' does not take images", p, c->eng->model_name);
    if (!tkr_pdf_supported()) return BAD(c, p, "%s: this server was built without PDF support", p);
    const json_t *d = json_object_get(part, type);
    const json_t *url = !json_is_object(d) ? d
                      : json_object_get(d, !strcmp(type, "file") ? "file_data" : "url");
    if (!url && json_is_object(d)) url = json_object_get(d, "url");
    if (!url) return BAD(c, p, "%s.%s needs %s", p, type, !strcmp(type, "file") ? "file_data" : "url");
    const json_t *o = json_is_object(d) ? d : part;
    const json_t *pages = json_object_get(o, "pages");
    if (!pages) pages = json_object_get(part, "pages");
    if (pages && !json_is_null(pages) && !json_is_string(pages))
        return BAD(c, p, "%s.pages must be a string such as \"1-3,7\"", p);
    double dpi = 0;
    tkr_status st = opt_number(c, o, part, "dpi", 10, 1200, false, p, &dpi);
    uint8_t *bytes = NULL;
    size_t n = 0;
    if (st == TKR_OK) st = media_bytes(c, url, p, &bytes, &n);
    if (st != TKR_OK) return st;
    tkr_pdf_input in = {.data = bytes, .size = n, .pages = json_string_value(pages), .dpi = dpi};
    tkr_media_limits lim = media_limits(c);
    tkr_error err;
    tkr_error_clear(&err);
    st = tkr_pdf_render(&in, &lim, &it->pdf, &err);
    free(bytes);
    if (st == TKR_ERR_NOMEM) return out_of_memory(c);
    if (st != TKR_OK) return BAD(c, p, "%s: %s", p, err.message);
    return TKR_OK;
}

/* {"content":[parts...]}: text, image_url, video_url parts: one vector for the whole item; a
 * document part: one vector per page. */
static tkr_status parse_content(parse_ctx *c, tkr_api_item *it, const json_t *content,
                                const char *param) {
    char p[128];
    if (!json_is_array(content) || json_array_size(content) == 0)
        return BAD(c, param, "%s.content must be a non-empty array of parts", param);
    size_t n = json_array_size(content), n_img = 0, n_txt = 0, n_vid = 0, n_doc = 0;
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
        } else if (!strcmp(type, "video_url")) {
            if (n_vid++) return BAD(c, p, "%s: one video per item", p);
        } else if (!strcmp(type, "document") || !strcmp(type, "file")) {
            if (n_doc++) return BAD(c, p, "%s: one document per item", p);
        } else {
            return BAD(c, p, "%s.type '%.40s' is not supported (text, image_url, video_url, "
                       "document, file)", p, type);
        }
    }
    if (n_doc && (n_img || n_vid))
        return BAD(c, param, "%s: a document part cannot be combined with images or a video "
                   "(each page is embedded as an image item of its own)", param);
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
        if (strcmp(type, "image_url") != 0) {
            snprintf(p, sizeof p, "%s.content[%zu]", param, i);
            st = !strcmp(type, "video_url") ? add_video(c, it, part, p) : add_document(c, it, part, type, p);
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
    if (!it->item.token_ids && it->item.text_len == 0 && it->item.n_images == 0 && !it->item.video)
        return BAD(c, param, "%s is empty", param);
    int tmpl = 0;
    if (eng->template_tokens &&
        eng->template_tokens(eng->impl, it->item.instruction, it->item.n_images + it->n_video_frames,
                             &tmpl, &err) != TKR_OK)
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
    /* a document's pages are counted one by one once they are items of their own */
    if (st == TKR_OK && it->pdf.n == 0) st = count_and_limit(c, it, param);
    return st;
}

/* Turns the item at slot k, whose document part rendered pages, into one item per page (the
 * item's text and instruction on each, the page as a pixel image), counted and limited each.
 * The array may grow: *items and *cap are updated. */
static tkr_status expand_pages(parse_ctx *c, tkr_api_request *req, size_t *cap, size_t k,
                               const char *param) {
    tkr_media_frames pages = req->items[k].pdf;
    memset(&req->items[k].pdf, 0, sizeof pages);
    tkr_status st = TKR_OK;
    if (k + (size_t)pages.n > *cap) {
        size_t nc = k + (size_t)pages.n;
        tkr_api_item *ni = realloc(req->items, sizeof *ni * nc);
        if (!ni) {
            tkr_media_frames_free(&pages);
            return out_of_memory(c);
        }
        memset(ni + *cap, 0, sizeof *ni * (nc - *cap));
        req->items = ni;
        *cap = nc;
    }
    tkr_api_item base = req->items[k];
    for (int p = 0; p < pages.n && st == TKR_OK; p++) {
        tkr_api_item *it = &req->items[k + (size_t)p];
        if (p > 0) {
            memset(it, 0, sizeof *it);
            it->item = base.item;
            if (base.text_owned) {
                it->text_owned = malloc(base.item.text_len + 1);
                if (!it->text_owned) { st = out_of_memory(c); break; }
                memcpy(it->text_owned, base.text_owned, base.item.text_len + 1);
                it->item.text = it->text_owned;
            }
        }
        it->input_index = base.input_index;
        it->page = (int)pages.frames[p].index;
        it->page_rgb = pages.frames[p].rgb;
        pages.frames[p].rgb = NULL;
        it->images = calloc(1, sizeof *it->images);
        if (!it->images) { st = out_of_memory(c); break; }
        it->images[0] = (tkr_image_input){.rgb = it->page_rgb, .width = pages.frames[p].width,
                                          .height = pages.frames[p].height};
        it->item.images = it->images;
        it->item.n_images = 1;
        it->image_tokens = c->eng->image_tokens
                               ? c->eng->image_tokens(c->eng->impl, pages.frames[p].width, pages.frames[p].height)
                               : c->cfg->max_image_tokens;
        char pp[96];
        snprintf(pp, sizeof pp, "%s (page %d)", param, it->page);
        st = count_and_limit(c, it, pp);
    }
    tkr_media_frames_free(&pages);
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
    size_t cap = n, k = 0;
    req->items = calloc(cap, sizeof *req->items);
    if (!req->items) { st = out_of_memory(c); goto fail; }
    req->n_items = (int)cap;   /* every slot is freed on failure (unused ones are zero) */
    for (size_t i = 0; i < n; i++) {
        char param[64];
        const json_t *v = single ? input : json_array_get(input, i);
        if (single) snprintf(param, sizeof param, "input");
        else snprintf(param, sizeof param, "input[%zu]", i);
        if (!single && json_is_integer(v)) {
            st = BAD(c, param, "%s: a token array must contain only integers", param);
            goto fail;
        }
        if (k == cap) {   /* pages made the array grow: keep one slot per remaining input */
            tkr_api_item *ni = realloc(req->items, sizeof *ni * (cap + (n - i)));
            if (!ni) { st = out_of_memory(c); goto fail; }
            memset(ni + cap, 0, sizeof *ni * (n - i));
            req->items = ni;
            cap += n - i;
            req->n_items = (int)cap;
        }
        req->items[k].input_index = (int)i;
        st = parse_item(c, &req->items[k], v, param);
        size_t made = 1;
        if (st == TKR_OK && req->items[k].pdf.n > 0) {
            made = (size_t)req->items[k].pdf.n;
            st = expand_pages(c, req, &cap, k, param);
            req->n_items = (int)cap;
            req->has_pages = true;
        }
        if (st != TKR_OK) goto fail;
        for (size_t j = k; j < k + made; j++) {
            tkr_api_item *it = &req->items[j];
            req->est_tokens += it->est_tokens;
            req->n_images += it->item.n_images + it->n_video_frames;
            req->n_truncated += it->truncated;
        }
        k += made;
        if (k > (size_t)cfg->max_items_per_request) {
            st = BAD(c, "input", "the request makes %zu items (PDF pages count one each), over the "
                     "limit of %d per request", k, cfg->max_items_per_request);
            goto fail;
        }
        if (req->est_tokens > cfg->max_request_tokens) {
            st = BAD(c, "input", "the request has more than %ld prompt tokens in all (limit "
                     "reached at input[%zu])", cfg->max_request_tokens, i);
            goto fail;
        }
    }
    req->n_items = (int)k;
    /* the array is final: point each item at its own video */
    for (size_t j = 0; j < k; j++)
        if (req->items[j].item.video) req->items[j].item.video = &req->items[j].video;
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
        free(it->video_data);
        free(it->page_rgb);
        tkr_media_frames_free(&it->pdf);
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
        sbuf_printf(out, "%s{\"object\":\"embedding\",\"index\":%d,", i ? "," : "", i);
        if (req->items[i].page > 0)
            sbuf_printf(out, "\"input_index\":%d,\"page\":%d,", req->items[i].input_index,
                        req->items[i].page);
        sbuf_puts(out, "\"embedding\":");
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
