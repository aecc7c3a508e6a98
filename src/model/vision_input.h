/* vision_input.h - an item's images to merged image features (decode, preprocess, vision tower). */
#ifndef TKR_VISION_INPUT_H
#define TKR_VISION_INPUT_H

#include "model/model.h"

/* For each image of the item: tok_h/tok_w get its merged-token grid; *features gets
 * [sum(tok_h*tok_w), D] floats (malloc'ed), *n_tokens their count. */
tkr_status tkr_vision_encode_item(tkr_model *m, const tkr_item *item, int *tok_h, int *tok_w,
                                  float **features, int *n_tokens, tkr_error *err);

#endif
