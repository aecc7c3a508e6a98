/* prompt.h - an item's decoder input: token ids (image pads expanded) and M-RoPE positions. */
#ifndef TKR_PROMPT_H
#define TKR_PROMPT_H

#include "model/model.h"

typedef struct {
    int32_t *ids;   /* [n]                                   */
    int32_t *pos;   /* [3][n]: t, h, w (same allocation)     */
    int n;
    int truncated;  /* text tokens dropped to fit max_tokens_per_item */
} tkr_prompt;

/* tok_h/tok_w: merged-token grid (grid / merge) of each of the item's images. */
tkr_status tkr_prompt_build(const tkr_model *m, const tkr_item *item, const int *tok_h,
                            const int *tok_w, tkr_prompt *out, tkr_error *err);
void tkr_prompt_free(tkr_prompt *p);

#endif
