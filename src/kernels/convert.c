/* convert.c - float16 / bfloat16 <-> float32 in plain C, and weight row expansion. */
#include "kernels/kernels.h"
#include "kernels/quant.h"

#include <string.h>

float tkr_bf16_to_f32(uint16_t b) {
    uint32_t u = (uint32_t)b << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* IEEE half to single: handles subnormals, infinities and NaN exactly. */
float tkr_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f;
    uint32_t man = h & 0x3ff;
    uint32_t u;
    if (exp == 0) {
        if (man == 0) {
            u = sign;
        } else { /* subnormal: normalise */
            int e = -1;
            do {
                e++;
                man <<= 1;
            } while (!(man & 0x400));
            man &= 0x3ff;
            u = sign | (uint32_t)(127 - 15 - e) << 23 | man << 13;
        }
    } else if (exp == 31) {
        u = sign | 0x7f800000u | man << 13;
    } else {
        u = sign | (exp + 127 - 15) << 23 | man << 13;
    }
    float f;
    memcpy(&f, &u, 4);
    return f;
}

uint16_t tkr_f32_to_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40); /* quiet NaN */
    uint32_t rounding = 0x7fff + ((u >> 16) & 1);
    return (uint16_t)((u + rounding) >> 16);
}

uint16_t tkr_f32_to_f16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    uint32_t sign = (u >> 16) & 0x8000;
    uint32_t absu = u & 0x7fffffffu;
    if (absu > 0x7f800000u) return (uint16_t)(sign | 0x7e00);
    if (absu >= 0x477ff000u) return (uint16_t)(sign | 0x7c00); /* overflow -> inf */
    if (absu < 0x38800000u) {                                  /* subnormal or zero */
        if (absu < 0x33000000u) return (uint16_t)sign;
        uint32_t e = absu >> 23;
        uint32_t m = (absu & 0x7fffff) | 0x800000;
        uint32_t shift = 126 - e;  /* 14 + (113 - e) */
        uint32_t half = m >> shift;
        uint32_t rem = m & ((1u << shift) - 1);
        uint32_t mid = 1u << (shift - 1);
        if (rem > mid || (rem == mid && (half & 1))) half++;
        return (uint16_t)(sign | half);
    }
    uint32_t h = ((absu >> 13) - (112u << 10));
    uint32_t rem = absu & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (h & 1))) h++;
    return (uint16_t)(sign | h);
}

void tkr_weight_row_f32(const tkr_tensor *w, int64_t row, float *out) {
    int64_t n = w->ndim >= 2 ? w->shape[w->ndim - 1] : w->shape[0];
    if (w->ndim < 2) row = 0;
    const uint8_t *base = w->data;
    if (w->layout == TKR_LAYOUT_PAIR_PANELS) { /* tensor.h: row j of panel p, a pair at a time */
        size_t pr = (size_t)w->panel_rows, kp = ((size_t)n + 1) / 2;
        const uint8_t *col = base + (((size_t)row / pr) * kp * pr + (size_t)row % pr) * 4;
        for (int64_t i = 0; i < n; i++) {
            uint32_t pair;
            memcpy(&pair, col + (size_t)(i / 2) * pr * 4, 4);
            out[i] = tkr_bf16_to_f32((uint16_t)(i & 1 ? pair >> 16 : pair & 0xFFFFu));
        }
        return;
    }
    switch (w->dtype) {
    case TKR_DT_F32:
        memcpy(out, base + (size_t)row * (size_t)n * 4, (size_t)n * 4);
        break;
    case TKR_DT_F16:
        for (int64_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, base + ((size_t)row * (size_t)n + (size_t)i) * 2, 2);
            out[i] = tkr_f16_to_f32(h);
        }
        break;
    case TKR_DT_BF16:
        for (int64_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, base + ((size_t)row * (size_t)n + (size_t)i) * 2, 2);
            out[i] = tkr_bf16_to_f32(h);
        }
        break;
    default: /* quantized: rows are whole blocks */
        tkr_dequantize_row(w->dtype, base + (size_t)row * tkr_dtype_row_bytes(w->dtype, n), out, n);
        break;
    }
}
