/* vision_input.h - an item's images (and video frames): pixels to model-size RGB (prepare, any
 * thread) and to merged image features (the vision tower, on the compute thread). */
#ifndef TKR_VISION_INPUT_H
#define TKR_VISION_INPUT_H

#include "model/model.h"
#include "image/image.h"

typedef struct {
    int n_images;           /* the item's images, then its video's frames              */
    int n_video_frames;
    int *grid_h, *grid_w;   /* [n_images] patch grids                              */
    int *tok_h, *tok_w;     /* [n_images] merged-token grids (grid / merge)        */
    tkr_rgb_image *resized; /* [n_images] after smart_resize + bicubic (multiples of 28);
                               patchified per chunk in tkr_vision_encode, so a 64-frame
                               video holds ~64 MB of pixels rather than ~1.5 GB of patches */
    int n_tokens;           /* sum(tok_h * tok_w)                                  */
} tkr_vision_input;

/* Reads, decodes and resizes every image of the item, then decodes and resizes the frames its
 * video's sample picks (thread-safe: reads only the model's parameters). Errors name the image
 * by its position in the item, or the video. */
tkr_status tkr_vision_prepare(const tkr_model *m, const tkr_item *item, tkr_vision_input *out,
                              tkr_error *err);
void tkr_vision_input_free(tkr_vision_input *in);

/* Runs the vision tower: *features gets [n_tokens, D] floats (malloc'ed). Images go through it
 * in groups of at most TKR_VISION_CHUNK_PATCHES patches (one image at least): attention stays
 * within each image, so the features are the same as in one pass. */
#define TKR_VISION_CHUNK_PATCHES 16384
tkr_status tkr_vision_encode(tkr_model *m, const tkr_vision_input *in, float **features,
                             tkr_error *err);

#endif
