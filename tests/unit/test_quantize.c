/* test_quantize.c - quantize's choice of type per tensor (tkr_quantize_pick_type) against the
 * rules of llama.cpp's llama_tensor_get_type / tensor_type_fallback (llama-quant.cpp, Sep 2026)
 * for a qwen2 model without an importance matrix, worked out by hand for the real shapes:
 * Qwen2-VL-7B (28 layers, hidden 3584, ffn 18944, untied) and 2B (hidden 1536, tied), and for
 * rows that are not whole blocks. (The bytes themselves are checked against llama.cpp's
 * converter in tests/cli/test_gguf_models.sh.) */
#include "model/quantize.h"
#include "test.h"

#define PICK(t, name, nd, K, l, n, tied) tkr_quantize_pick_type(t, false, name, nd, K, l, n, tied)

static void test_q4_k_m_mix(void) {
    /* use_more_bits(i, 28): i < 3, i >= 24, or (i - 3) % 3 == 2 */
    static const int more[28] = {1, 1, 1, 0, 0, 1, 0, 0, 1, 0, 0, 1, 0, 0,
                                 1, 0, 0, 1, 0, 0, 1, 0, 0, 1, 1, 1, 1, 1};
    for (int i = 0; i < 28; i++) {
        tkr_dtype want = more[i] ? TKR_DT_Q6_K : TKR_DT_Q4_K;
        char v[64], d[64], q[64], g[64];
        snprintf(v, sizeof v, "blk.%d.attn_v.weight", i);
        snprintf(d, sizeof d, "blk.%d.ffn_down.weight", i);
        snprintf(q, sizeof q, "blk.%d.attn_q.weight", i);
        snprintf(g, sizeof g, "blk.%d.ffn_gate.weight", i);
        CHECK(PICK(TKR_QT_Q4_K_M, v, 2, 3584, i, 28, false) == want, "attn_v layer %d", i);
        CHECK(PICK(TKR_QT_Q4_K_M, d, 2, 18944, i, 28, false) == want, "ffn_down layer %d", i);
        CHECK(PICK(TKR_QT_Q4_K_M, q, 2, 3584, i, 28, false) == TKR_DT_Q4_K, "attn_q layer %d", i);
        CHECK(PICK(TKR_QT_Q4_K_M, g, 2, 3584, i, 28, false) == TKR_DT_Q4_K, "ffn_gate layer %d", i);
        CHECK(PICK(TKR_QT_Q6_K, v, 2, 3584, i, 28, false) == TKR_DT_Q6_K, "q6_k attn_v %d", i);
        CHECK(PICK(TKR_QT_Q4_0, d, 2, 18944, i, 28, false) == TKR_DT_Q4_0, "q4_0 ffn_down %d", i);
    }
    CHECK(PICK(TKR_QT_Q4_K_M, "output.weight", 2, 3584, -1, 28, false) == TKR_DT_Q6_K, "output");
    CHECK(PICK(TKR_QT_Q4_K_M, "token_embd.weight", 2, 3584, -1, 28, false) == TKR_DT_Q4_K,
          "untied token_embd keeps the base type");
    CHECK(PICK(TKR_QT_Q4_K_M, "token_embd.weight", 2, 1536, -1, 28, true) == TKR_DT_Q6_K,
          "tied token_embd is the output: Q6_K");
    CHECK(PICK(TKR_QT_Q4_K_M, "blk.0.attn_norm.weight", 1, 3584, 0, 28, false) == TKR_DT_F32, "norm");
    CHECK(PICK(TKR_QT_Q4_K_M, "blk.0.attn_q.bias", 1, 3584, 0, 28, false) == TKR_DT_F32, "bias");
}

static void test_output_rules(void) {
    CHECK(PICK(TKR_QT_Q8_0, "output.weight", 2, 3584, -1, 28, false) == TKR_DT_Q8_0, "q8_0 output");
    CHECK(PICK(TKR_QT_Q4_0, "output.weight", 2, 3584, -1, 28, false) == TKR_DT_Q6_K, "q4_0 output");
    CHECK(PICK(TKR_QT_Q4_0, "token_embd.weight", 2, 1536, -1, 28, true) == TKR_DT_Q6_K, "q4_0 tied");
    CHECK(PICK(TKR_QT_Q4_0, "token_embd.weight", 2, 1536, -1, 28, false) == TKR_DT_Q4_0, "q4_0 untied");
    CHECK(PICK(TKR_QT_Q6_K, "output.weight", 2, 3584, -1, 28, false) == TKR_DT_Q6_K, "q6_k output");
    /* output rows of 96: whole Q4_0 blocks, so Q6_K, which falls back to Q8_0 */
    CHECK(PICK(TKR_QT_Q4_0, "output.weight", 2, 96, -1, 2, false) == TKR_DT_Q8_0, "96 -> q8_0");
    /* rows of 16: not whole blocks of the base type: Q8_0, which falls back to F16 */
    CHECK(PICK(TKR_QT_Q4_K_M, "output.weight", 2, 16, -1, 2, false) == TKR_DT_F16, "16 -> f16");
    CHECK(PICK(TKR_QT_F16, "output.weight", 2, 3584, -1, 28, false) == TKR_DT_F16, "f16");
    CHECK(PICK(TKR_QT_BF16, "blk.3.ffn_up.weight", 2, 3584, 3, 28, false) == TKR_DT_BF16, "bf16");
    CHECK(PICK(TKR_QT_F32, "blk.3.ffn_up.weight", 2, 3584, 3, 28, false) == TKR_DT_F32, "f32");
}

static void test_fallback(void) {
    /* K % 256 != 0 but K % 32 == 0: K-quants -> Q8_0; K % 32 != 0: F16 (Q8_0, Q4_0 too) */
    CHECK(PICK(TKR_QT_Q4_K_M, "blk.0.ffn_up.weight", 2, 96, 0, 2, false) == TKR_DT_Q8_0, "q4_k 96");
    CHECK(PICK(TKR_QT_Q6_K, "blk.0.ffn_up.weight", 2, 160, 0, 2, false) == TKR_DT_Q8_0, "q6_k 160");
    CHECK(PICK(TKR_QT_Q6_K, "blk.0.ffn_up.weight", 2, 40, 0, 2, false) == TKR_DT_F16, "q6_k 40");
    CHECK(PICK(TKR_QT_Q8_0, "blk.0.ffn_up.weight", 2, 24, 0, 2, false) == TKR_DT_F16, "q8_0 24");
    CHECK(PICK(TKR_QT_Q4_0, "blk.0.ffn_up.weight", 2, 64, 0, 2, false) == TKR_DT_Q4_0, "q4_0 64");
    CHECK(PICK(TKR_QT_Q4_K_M, "blk.0.ffn_up.weight", 2, 512, 0, 2, false) == TKR_DT_Q4_K, "q4_k 512");
}

static void test_vision(void) {
    CHECK(tkr_quantize_pick_type(TKR_QT_Q8_0, true, "v.patch_embd.weight", 4, 14, -1, 32, false) ==
          TKR_DT_F32, "patch embedding F32 for q8_0");
    CHECK(tkr_quantize_pick_type(TKR_QT_F16, true, "v.patch_embd.weight.1", 4, 14, -1, 32, false) ==
          TKR_DT_F16, "patch embedding F16 for f16");
    CHECK(tkr_quantize_pick_type(TKR_QT_BF16, true, "v.patch_embd.weight", 4, 14, -1, 32, false) ==
          TKR_DT_F32, "patch embedding F32 for bf16");
    CHECK(tkr_quantize_pick_type(TKR_QT_Q8_0, true, "v.blk.0.attn_v.weight", 2, 1280, 0, 32, false) ==
          TKR_DT_Q8_0, "vision q8_0");
    CHECK(tkr_quantize_pick_type(TKR_QT_Q4_K, true, "v.blk.0.attn_v.weight", 2, 1280, 0, 32, false) ==
          TKR_DT_Q4_K, "vision q4_k: no mix");
    CHECK(tkr_quantize_pick_type(TKR_QT_Q8_0, true, "mm.0.weight", 2, 5120, -1, 32, false) ==
          TKR_DT_Q8_0, "merger");
    CHECK(tkr_quantize_pick_type(TKR_QT_Q8_0, true, "v.blk.0.ln1.bias", 1, 1280, 0, 32, false) ==
          TKR_DT_F32, "vision bias");
    CHECK(tkr_quantize_pick_type(TKR_QT_Q8_0, true, "v.blk.0.ffn_up.weight", 2, 48, 0, 32, false) ==
          TKR_DT_F16, "vision fallback");
}

static void test_bad_calls(void) {
    tkr_quantize_params p = tkr_quantize_default_params();
    tkr_error err;
    CHECK(tkr_quantize_model("/nonexistent/model", "/tmp/x.gguf", &p, &err) != TKR_OK &&
              strstr(err.message, "/nonexistent/model"), "missing source: %s", err.message);
    p.type = TKR_QT_Q4_K;
    CHECK(tkr_quantize_model("/nonexistent/model", "/tmp/x.gguf", &p, &err) == TKR_ERR_INVALID_ARG,
          "q4_k is a vision-only type: %s", err.message);
    tkr_qtype t;
    CHECK(tkr_qtype_from_name("Q4_K_M", &t) && t == TKR_QT_Q4_K_M, "names");
    CHECK(!tkr_qtype_from_name("q5_k", &t), "q5_k is not offered");
}

int main(void) {
    RUN(test_q4_k_m_mix);
    RUN(test_output_rules);
    RUN(test_fallback);
    RUN(test_vision);
    RUN(test_bad_calls);
    return test_summary();
}
