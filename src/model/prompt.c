/* prompt.c - turning one item into decoder input, the Ops-MM way:
 *
 *   <|im_start|>system\n{instruction}<|im_end|>\n<|im_start|>user\n
 *   {<|vision_start|><|image_pad|><|vision_end|> per image}{text}<|im_end|>\n
 *   <|im_start|>assistant\n<|endoftext|>
 *
 * The whole string is tokenized at once (special-token strings in the user's text are matched
 * as the reference matches them), then each <|image_pad|> is expanded to the image's token count
 * and the M-RoPE positions are computed as HF's get_rope_index does. */
#include "model/prompt.h"
#include "tokenizer/tokenizer.h"
#include "util/error.h"

#include <stdlib.h>
#include <string.h>

static const char DEFAULT_INSTRUCTION[] = "You are a helpful assistant.";
static const char P_SYSTEM[] = "<|im_start|>system\n";
static const char P_USER[] = "<|im_end|>\n<|im_start|>user\n";
static const char P_IMAGE[] = "<|vision_start|><|image_pad|><|vision_end|>";
static const char P_SUFFIX[] = "<|im_end|>\n<|im_start|>assistant\n<|endoftext|>";

/* Appends n bytes to a growing buffer; returns 0 on overflow or allocation failure. */
static int buf_append(char **buf, size_t *len, size_t *cap, const char *s, size_t n) {
    if (n > SIZE_MAX - *len - 1) return 0;
    if (*len + n + 1 > *cap) {
        size_t nc = *cap ? *cap : 256;
        while (nc < *len + n + 1) nc = nc > SIZE_MAX / 2 ? *len + n + 1 : nc * 2;
        char *nb = realloc(*buf, nc);
        if (!nb) return 0;
        *buf = nb;
        *cap = nc;
    }
    memcpy(*buf + *len, s, n);
    *len += n;
    (*buf)[*len] = '\0';
    return 1;
}

static tkr_status tokenize_string(const tkr_model *m, const char *s, size_t n, int32_t **ids,
                                  size_t *n_ids, tkr_error *err) {
    return tkr_tokenize(m->tok, s, n, ids, n_ids, err);
}

/* The template ends with <|im_end|> \n <|im_start|> assistant \n <|endoftext|>: six tokens. */
enum { SUFFIX_TOKENS = 6 };

/* How many tokens can be cut from the end of the user's text to remove `excess` tokens: the
 * text runs from after the last special token of the prefix (<|vision_end|>, or <|im_start|>
 * of the user turn followed by "user" "\n") up to the suffix. Returns min(excess, available),
 * or 0 when the text cannot absorb the whole excess (the caller then reports the limit). */
static size_t truncate_text(const tkr_model *m, const int32_t *ids, size_t n, size_t excess) {
    if (n < SUFFIX_TOKENS + 1) return 0;
    size_t end = n - SUFFIX_TOKENS, start = end;
    while (start > 0 && ids[start - 1] != m->tok_vision_end && ids[start - 1] != m->tok_im_start) start--;
    if (start > 0 && ids[start - 1] == m->tok_im_start) start += 2; /* keep "user" "\n" */
    size_t avail = end > start ? end - start : 0;
    return excess <= avail ? excess : 0;
}

/* Text positions advance by one; an image of H x W merged tokens takes (base, base+r, base+c)
 * and the text after it resumes at base + max(H, W). */
static void rope_positions(const int32_t *ids, int n, int32_t image_pad, const int *tok_h,
                           const int *tok_w, int32_t *pos) {
    int32_t next = 0;
    int img = 0;
    int i = 0;
    while (i < n) {
        if (ids[i] == image_pad && image_pad >= 0) {
            int H = tok_h[img], W = tok_w[img];
            int32_t base = next;
            for (int r = 0; r < H; r++)
                for (int c = 0; c < W; c++, i++) {
                    pos[i] = base;
                    pos[n + i] = base + r;
                    pos[2 * n + i] = base + c;
                }
            next = base + (H > W ? H : W);
            img++;
        } else {
            pos[i] = pos[n + i] = pos[2 * n + i] = next++;
            i++;
        }
    }
}

tkr_status tkr_prompt_build(const tkr_model *m, const tkr_item *item, const int *tok_h,
                            const int *tok_w, tkr_prompt *out, tkr_error *err) {
    memset(out, 0, sizeof *out);
    const char *instr = item->instruction ? item->instruction : DEFAULT_INSTRUCTION;
    size_t text_len = item->text ? (item->text_len ? item->text_len : strlen(item->text)) : 0;
    int n_images = item->n_images;
    if (item->text && item->token_ids)
        return tkr_fail(err, TKR_ERR_INVALID_ARG, "an item has either text or token ids, not both");
    for (size_t i = 0; i < item->n_token_ids; i++)
        if (item->token_ids[i] < 0 || item->token_ids[i] >= m->cfg.text.vocab_size)
            return tkr_fail(err, TKR_ERR_INVALID_ARG, "token id %d at position %zu is outside [0, %d)",
                            item->token_ids[i], i, m->cfg.text.vocab_size);

    char *s = NULL;
    size_t len = 0, cap = 0;
    int ok = buf_append(&s, &len, &cap, P_SYSTEM, sizeof P_SYSTEM - 1) &&
             buf_append(&s, &len, &cap, instr, strlen(instr)) &&
             buf_append(&s, &len, &cap, P_USER, sizeof P_USER - 1);
    for (int i = 0; ok && i < n_images; i++) ok = buf_append(&s, &len, &cap, P_IMAGE, sizeof P_IMAGE - 1);
    size_t prefix_len = len;
    if (ok && text_len) ok = buf_append(&s, &len, &cap, item->text, text_len);
    if (ok) ok = buf_append(&s, &len, &cap, P_SUFFIX, sizeof P_SUFFIX - 1);
    if (!ok) {
        free(s);
        return tkr_fail(err, TKR_ERR_NOMEM, "out of memory building the prompt");
    }

    int32_t *ids = NULL;
    size_t n_ids = 0;
    tkr_status st;
    if (item->token_ids) {
        /* token ids replace the text: tokenize the template around them */
        int32_t *pre = NULL, *suf = NULL;
        size_t n_pre = 0, n_suf = 0;
        st = tokenize_string(m, s, prefix_len, &pre, &n_pre, err);
        if (st == TKR_OK) st = tokenize_string(m, P_SUFFIX, sizeof P_SUFFIX - 1, &suf, &n_suf, err);
        if (st == TKR_OK) {
            n_ids = n_pre + item->n_token_ids + n_suf;
            ids = malloc(sizeof(int32_t) * (n_ids ? n_ids : 1));
            if (!ids) {
                st = tkr_fail(err, TKR_ERR_NOMEM, "out of memory");
            } else {
                memcpy(ids, pre, n_pre * sizeof(int32_t));
                memcpy(ids + n_pre, item->token_ids, item->n_token_ids * sizeof(int32_t));
                memcpy(ids + n_pre + item->n_token_ids, suf, n_suf * sizeof(int32_t));
            }
        }
        free(pre);
        free(suf);
    } else {
        st = tokenize_string(m, s, len, &ids, &n_ids, err);
    }
    free(s);
    if (st != TKR_OK) return st;

    /* With images, every <|image_pad|> must belong to one of them (the reference fails on a
     * count mismatch). Without images, the reference embeds a typed <|image_pad|> as an ordinary
     * token, and so do we. */
    int32_t image_pad = n_images > 0 ? m->tok_image_pad : -1;
    int pads = 0;
    for (size_t i = 0; i < n_ids; i++) pads += ids[i] == image_pad && image_pad >= 0;
    if (n_images > 0 && pads != n_images) {
        free(ids);
        return tkr_fail(err, TKR_ERR_INVALID_ARG,
                        "the text contains <|image_pad|> placeholders (%d for %d images); remove them",
                        pads, n_images);
    }
    size_t total = n_ids - (size_t)n_images;
    for (int i = 0; i < n_images; i++) total += (size_t)tok_h[i] * (size_t)tok_w[i];
    size_t limit = (size_t)m->params.max_tokens_per_item;
    if (total > limit && (item->truncate || m->params.truncate)) {
        size_t cut = truncate_text(m, ids, n_ids, total - limit);
        if (cut) {
            /* keep the template's suffix: move it over the dropped text tokens */
            memmove(ids + n_ids - SUFFIX_TOKENS - cut, ids + n_ids - SUFFIX_TOKENS,
                    SUFFIX_TOKENS * sizeof(int32_t));
            n_ids -= cut;
            total -= cut;
            out->truncated = (int)cut;
        }
    }
    if (total > limit) {
        free(ids);
        return tkr_fail(err, TKR_ERR_LIMIT, "the item has %zu tokens, more than the limit of %zu%s",
                        total, limit,
                        item->truncate || m->params.truncate ? " even with its text truncated" : "");
    }
    int n = (int)total;
    int32_t *full = malloc(sizeof(int32_t) * (size_t)n * 4);
    if (!full) {
        free(ids);
        return tkr_fail(err, TKR_ERR_NOMEM, "out of memory");
    }
    int j = 0, img = 0;
    for (size_t i = 0; i < n_ids; i++) {
        if (ids[i] == image_pad && image_pad >= 0) {
            int cnt = tok_h[img] * tok_w[img];
            for (int c = 0; c < cnt; c++) full[j++] = ids[i];
            img++;
        } else {
            full[j++] = ids[i];
        }
    }
    free(ids);
    out->ids = full;
    out->pos = full + n;
    out->n = n;
    rope_positions(full, n, image_pad, tok_h, tok_w, out->pos);
    return TKR_OK;
}

void tkr_prompt_free(tkr_prompt *p) {
    if (!p) return;
    free(p->ids);
    memset(p, 0, sizeof *p);
}
