/* vision_input.h - an item's images: pixels to patches (prepare, any thread) and patches to
 * merged image features (the vision tower, on the compute thread). */
#ifndef TKR_VISION_INPUT_H
#define TKR_VISION_INPUT_H

#include "model/model.h"

typedef struct {
    int n_images;
    int *grid_h, *grid_w;   /* [n_images] patch grids                              */
    int *tok_h, *tok_w;     /* [n_images] merged-token grids (grid / merge)        */
    float *patches;         /* [sum(grid_h*grid_w), 1176] all images, in order     */
    int n_tokens;           /* sum(tok_h * tok_w)                                  */
} tkr_vision_input;

/* Reads, decodes, resizes and patchifies every image of the item (thread-safe: reads only the
 * model's parameters). Errors name the image by its position in the item. */
tkr_status tkr_vision_prepare(const tkr_model *m, const tkr_item *item, tkr_vision_input *out,
                              tkr_error *err);
void tkr_vision_input_free(tkr_vision_input *in);

/* Runs the vision tower: *features gets [n_tokens, D] floats (malloc'ed). */
tkr_status tkr_vision_encode(tkr_model *m, const tkr_vision_input *in, float **features,
                             tkr_error *err);

#endif
