/* cuda.h - the CUDA backend's entry point (the .cu files beside it, built with make CUDA=1). */
#ifndef TKR_BACKEND_CUDA_H
#define TKR_BACKEND_CUDA_H

#include "backend/backend.h"

#include <stdbool.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Opens GPU `ordinal` for m and uploads its weights. When no usable GPU is found and `required`
 * is false, returns TKR_OK with *out = NULL (the caller stays on the CPU); when required, an
 * error that says why. fp32: float32 weights and GEMMs without TF32 (else BF16). */
tkr_status tkr_cuda_open(struct tkr_model *m, int ordinal, bool required, bool fp32,
                         tkr_backend **out, tkr_error *err);

#ifdef __cplusplus
}
#endif

#endif
