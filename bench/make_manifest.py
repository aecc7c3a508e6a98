#!/usr/bin/env python3
"""Writes config.json + weights.json for a random-weight Qwen2-VL of a real shape, for
tools/mkmodel to fill (no download, no torch):

    python3 bench/make_manifest.py 2b OUTDIR [--layers N] && build/tools/mkmodel OUTDIR/weights.json OUTDIR/model.safetensors

Shapes follow Qwen2-VL-2B/7B-Instruct (the Ops-MM-embedding-v1 bases). --layers N keeps the real
widths with N decoder layers: for measurements that do not depend on depth (activation memory of
a long text), at a fraction of the time."""
import json
import os
import sys

SHAPES = {
    "2b": dict(hidden=1536, layers=28, heads=12, kv=2, inter=8960, vocab=151936, tied=True),
    "7b": dict(hidden=3584, layers=28, heads=28, kv=4, inter=18944, vocab=152064, tied=False),
}
VISION = dict(depth=32, embed=1280, heads=16, mlp=5120)


def manifest(s):
    D, hd = s["hidden"], s["hidden"] // s["heads"]
    t = {"model.embed_tokens.weight": [s["vocab"], D], "model.norm.weight": [D]}
    for l in range(s["layers"]):
        p = "model.layers.%d." % l
        t[p + "input_layernorm.weight"] = [D]
        t[p + "post_attention_layernorm.weight"] = [D]
        t[p + "self_attn.q_proj.weight"] = [s["heads"] * hd, D]
        t[p + "self_attn.q_proj.bias"] = [s["heads"] * hd]
        for n in ("k", "v"):
            t[p + "self_attn.%s_proj.weight" % n] = [s["kv"] * hd, D]
            t[p + "self_attn.%s_proj.bias" % n] = [s["kv"] * hd]
        t[p + "self_attn.o_proj.weight"] = [D, s["heads"] * hd]
        t[p + "mlp.gate_proj.weight"] = [s["inter"], D]
        t[p + "mlp.up_proj.weight"] = [s["inter"], D]
        t[p + "mlp.down_proj.weight"] = [D, s["inter"]]
    if not s["tied"]:
        t["lm_head.weight"] = [s["vocab"], D]
    E, F = VISION["embed"], VISION["mlp"]
    t["visual.patch_embed.proj.weight"] = [E, 3, 2, 14, 14]
    for b in range(VISION["depth"]):
        p = "visual.blocks.%d." % b
        for n in ("norm1", "norm2"):
            t[p + n + ".weight"] = [E]
            t[p + n + ".bias"] = [E]
        t[p + "attn.qkv.weight"] = [3 * E, E]
        t[p + "attn.qkv.bias"] = [3 * E]
        t[p + "attn.proj.weight"] = [E, E]
        t[p + "attn.proj.bias"] = [E]
        t[p + "mlp.fc1.weight"] = [F, E]
        t[p + "mlp.fc1.bias"] = [F]
        t[p + "mlp.fc2.weight"] = [E, F]
        t[p + "mlp.fc2.bias"] = [E]
    t["visual.merger.ln_q.weight"] = [E]
    t["visual.merger.ln_q.bias"] = [E]
    t["visual.merger.mlp.0.weight"] = [4 * E, 4 * E]
    t["visual.merger.mlp.0.bias"] = [4 * E]
    t["visual.merger.mlp.2.weight"] = [D, 4 * E]
    t["visual.merger.mlp.2.bias"] = [D]
    return t


def config(s):
    return {
        "architectures": ["Qwen2VLForConditionalGeneration"], "model_type": "qwen2_vl",
        "bos_token_id": 151643, "eos_token_id": 151645, "vision_start_token_id": 151652,
        "vision_end_token_id": 151653, "vision_token_id": 151654, "image_token_id": 151655,
        "video_token_id": 151656, "hidden_act": "silu", "hidden_size": s["hidden"],
        "intermediate_size": s["inter"], "max_position_embeddings": 32768,
        "num_attention_heads": s["heads"], "num_hidden_layers": s["layers"],
        "num_key_value_heads": s["kv"], "rms_norm_eps": 1e-06, "rope_theta": 1000000.0,
        "tie_word_embeddings": s["tied"], "torch_dtype": "bfloat16", "use_sliding_window": False,
        "vision_config": {"depth": VISION["depth"], "embed_dim": VISION["embed"], "mlp_ratio": 4,
                          "num_heads": VISION["heads"], "in_chans": 3, "hidden_size": s["hidden"],
                          "patch_size": 14, "spatial_merge_size": 2, "spatial_patch_size": 14,
                          "temporal_patch_size": 2},
        "rope_scaling": {"type": "mrope", "mrope_section": [16, 24, 24]},
        "vocab_size": s["vocab"],
    }


def main():
    args = sys.argv[1:]
    layers = None
    if len(args) == 4 and args[2] == "--layers" and args[3].isdigit() and int(args[3]) >= 1:
        layers = int(args[3])
        args = args[:2]
    if len(args) != 2 or args[0] not in SHAPES:
        print(__doc__, file=sys.stderr)
        return 2
    s, out = dict(SHAPES[args[0]]), args[1]
    if layers is not None:
        s["layers"] = layers
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(config(s), f, indent=2)
    with open(os.path.join(out, "weights.json"), "w") as f:
        json.dump({"seed": 2024, "dtype": "BF16", "layout": "old", "tied": s["tied"],
                   "tensors": manifest(s)}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
