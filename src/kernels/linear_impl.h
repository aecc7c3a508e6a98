/* linear_impl.h - the per-ISA blocks behind tkr_linear (internal to src/kernels). */
#ifndef TKR_LINEAR_IMPL_H
#define TKR_LINEAR_IMPL_H

#include "kernels/kernels.h"

/* Both compute y[m, n] for m in [0, M), n in [n0, n1) (row stride N). */
void tkr_linear_block_generic(const float *x, int M, int K, const tkr_tensor *w, int n0, int n1,
                              float *y, int N, float *wrow_scratch);
void tkr_linear_block_avx2(const float *x, int M, int K, const tkr_tensor *w, int n0, int n1,
                           float *y, int N);

#endif
