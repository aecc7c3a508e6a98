#!/usr/bin/env python3
"""HF transformers side of the GPU benchmark (bench/bench_gpu.c is ours), on the accelerator.

    python3 bench/bench_gpu_hf.py --out DIR --data SHARED_DATA [--images N] [--runs R] [--shape 2b|7b] [--quick]

1. Builds a random-weight model of the real Ops-MM-embedding-v1-2B / Qwen2-VL-2B shape (hidden
   1536, 28 layers, 12/2 heads of 128, intermediate 8960; vision 32 blocks x 1280, 16 heads)
   in bf16 on the GPU, saves it with save_pretrained to DIR/model (plus the Qwen2 tokenizer
   files our loader reads), and writes DIR/img256.jpg (448x448: 256 image tokens) and
   DIR/img1280.jpg (1120x896: 1280 image tokens).
2. Times HF (bf16, sdpa) on the same shapes as bench_gpu: 64 x 128 and 16 x 512 text tokens,
   one 128-token text, N images of 256 tokens and N/4 of 1280 tokens batched, one 256-token
   image. The model part only (Qwen2VLModel forward, last-token pooling, L2 normalisation);
   the image processor's time is reported separately. Prints one JSON object per line.
--shape 7b: the Qwen2-VL-7B / Ops-MM-embedding-v1-7B shape instead (hidden 3584, 28 layers, 28/4
heads of 128, intermediate 18944, vocabulary 152064; the vision tower as the 2B's, merging into
3584). --quick: only 64 x 128 text, one 128-token text and N images of 256 tokens.
Random ids: the compute does not depend on their values, only on the lengths, which match.
"""
import argparse
import json
import os
import shutil
import statistics
import time

import numpy as np
import torch


SHAPES = {"2b": dict(hidden_size=1536, intermediate_size=8960, num_attention_heads=12, num_key_value_heads=2,
                     vocab_size=151936),
          "7b": dict(hidden_size=3584, intermediate_size=18944, num_attention_heads=28, num_key_value_heads=4,
                     vocab_size=152064)}


def cfg_2b(shape="2b"):
    from transformers import Qwen2VLConfig
    sh = SHAPES[shape]
    text = dict(hidden_size=sh["hidden_size"], intermediate_size=sh["intermediate_size"], num_hidden_layers=28,
                num_attention_heads=sh["num_attention_heads"], num_key_value_heads=sh["num_key_value_heads"],
                rms_norm_eps=1e-6, vocab_size=sh["vocab_size"], max_position_embeddings=32768,
                hidden_act="silu", rope_theta=1000000.0,
                rope_scaling={"type": "mrope", "mrope_section": [16, 24, 24]},
                bos_token_id=151643, eos_token_id=151645)
    vision = dict(depth=32, embed_dim=1280, mlp_ratio=4, num_heads=16, in_chans=3, hidden_size=sh["hidden_size"],
                  patch_size=14, spatial_merge_size=2, temporal_patch_size=2)
    return Qwen2VLConfig(text_config=text, vision_config=vision, tie_word_embeddings=True,
                         image_token_id=151655, video_token_id=151656, vision_start_token_id=151652,
                         vision_end_token_id=151653)


def build(out, data, fixtures, shape="2b"):
    from transformers import Qwen2VLForConditionalGeneration
    mdir = os.path.join(out, "model")
    cfg = cfg_2b(shape)
    cfg._attn_implementation = "sdpa"
    torch.manual_seed(0)
    t0 = time.time()
    with torch.device("cuda"):
        try:
            model = Qwen2VLForConditionalGeneration._from_config(cfg, dtype=torch.bfloat16)
        except TypeError:
            model = Qwen2VLForConditionalGeneration._from_config(cfg, torch_dtype=torch.bfloat16)
    model = model.to(torch.bfloat16)
    model.eval()
    model.save_pretrained(mdir, safe_serialization=True)
    for f in ("vocab.json", "merges.txt"):
        shutil.copy(os.path.join(data, "tokenizers/qwen2", f), mdir)
    for f in ("tokenizer_config.json", "added_tokens.json"):
        shutil.copy(os.path.join(fixtures, "qwen2vl", f), mdir)
    from PIL import Image
    rng = np.random.default_rng(0)
    for name, (w, h) in (("img256.jpg", (448, 448)), ("img1280.jpg", (1120, 896))):
        yy, xx = np.mgrid[0:h, 0:w]
        arr = np.stack([(xx * 255 // w), (yy * 255 // h), ((xx + yy) * 127 // (w + h))], -1).astype(np.int32)
        arr = np.clip(arr + rng.integers(-20, 20, arr.shape), 0, 255).astype(np.uint8)
        Image.fromarray(arr).save(os.path.join(out, name), quality=90)
    print(json.dumps({"bench": "hf_build", "shape": shape, "seconds": round(time.time() - t0, 2), "dir": mdir}),
          flush=True)
    return model


def timed(fn, runs):
    fn()
    fn()
    torch.cuda.synchronize()
    ts = []
    for _ in range(runs):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts), min(ts)


@torch.no_grad()
def embed(model, **kw):
    out = model.model(return_dict=True, **kw)
    h = out.last_hidden_state[:, -1, :].float()
    return torch.nn.functional.normalize(h, p=2, dim=-1)


def bench_text(model, B, L, runs):
    g = torch.Generator().manual_seed(B * 1000 + L)
    ids = torch.randint(1000, 150000, (B, L), generator=g).cuda()
    mask = torch.ones_like(ids)
    med, mn = timed(lambda: embed(model, input_ids=ids, attention_mask=mask), runs)
    if B == 1:
        return {"bench": "text_latency", "device": "hf", "tokens": L, "median_ms": round(med * 1e3, 3),
                "min_ms": round(mn * 1e3, 3)}
    return {"bench": "text_throughput", "device": "hf", "batch": B, "tokens": L, "median_s": round(med, 5),
            "tokens_per_s": round(B * L / med)}


def bench_images(model, proc, path, N, runs, latency=False):
    from PIL import Image
    img = Image.open(path).convert("RGB")
    t0 = time.perf_counter()
    px = proc(images=[img] * N, return_tensors="pt")
    prep = time.perf_counter() - t0
    grid = px["image_grid_thw"]
    n_tok = int(grid[0].prod()) // 4
    g = torch.Generator().manual_seed(n_tok)
    pre = torch.randint(1000, 150000, (18,), generator=g).tolist()
    row = pre[:14] + [151652] + [151655] * n_tok + [151653] + pre[14:] + [151643]
    ids = torch.tensor([row] * N).cuda()
    kw = dict(input_ids=ids, attention_mask=torch.ones_like(ids),
              pixel_values=px["pixel_values"].cuda().to(torch.bfloat16), image_grid_thw=grid.cuda(),
              mm_token_type_ids=(ids == 151655).to(torch.int32))
    med, mn = timed(lambda: embed(model, **kw), runs)
    if latency:
        return {"bench": "image_latency", "device": "hf", "image_tokens": n_tok, "median_ms": round(med * 1e3, 3),
                "min_ms": round(mn * 1e3, 3), "processor_ms": round(prep * 1e3, 2), "note": "model only"}
    return {"bench": "image_throughput", "device": "hf", "images": N, "image_tokens": n_tok,
            "prompt_tokens": len(row), "median_s": round(med, 5), "images_per_s": round(N / med, 1),
            "processor_s": round(prep, 3)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--fixtures", default=os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures"))
    ap.add_argument("--images", type=int, default=64)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--shape", choices=sorted(SHAPES), default="2b")
    ap.add_argument("--quick", action="store_true", help="64 x 128 text, 1 x 128, N images of 256 only")
    ap.add_argument("--build-only", action="store_true", help="write the model and images, time nothing")
    ap.add_argument("--profile", action="store_true",
                    help="after the benchmarks, a torch.profiler table of the batched image passes (stderr)")
    a = ap.parse_args()
    import transformers
    print(json.dumps({"bench": "hf_versions", "torch": torch.__version__, "transformers": transformers.__version__,
                      "gpu": torch.cuda.get_device_name(0)}), flush=True)
    model = build(a.out, a.data, a.fixtures, a.shape)
    if a.build_only:
        return
    import sys
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
    from gen_reference import make_image_processor
    proc = make_image_processor()
    for B, L in ((64, 128), (1, 128)) if a.quick else ((64, 128), (16, 512), (1, 128)):
        print(json.dumps(bench_text(model, B, L, a.runs if B > 1 else 4 * a.runs)), flush=True)
    print(json.dumps(bench_images(model, proc, os.path.join(a.out, "img256.jpg"), a.images, a.runs)), flush=True)
    if a.quick:
        return
    print(json.dumps(bench_images(model, proc, os.path.join(a.out, "img256.jpg"), 1, 4 * a.runs, True)), flush=True)
    print(json.dumps(bench_images(model, proc, os.path.join(a.out, "img1280.jpg"), max(1, a.images // 4), a.runs)),
          flush=True)
    if a.profile:
        profile_images(model, proc, os.path.join(a.out, "img1280.jpg"), max(1, a.images // 4))
        profile_images(model, proc, os.path.join(a.out, "img256.jpg"), a.images)


def profile_images(model, proc, path, N):
    """Which kernels HF's image path runs and their GPU time share (one pass after warm-up)."""
    import sys
    from PIL import Image
    from torch.profiler import ProfilerActivity, profile
    img = Image.open(path).convert("RGB")
    px = proc(images=[img] * N, return_tensors="pt")
    grid = px["image_grid_thw"]
    n_tok = int(grid[0].prod()) // 4
    row = [1000] * 14 + [151652] + [151655] * n_tok + [151653] + [1000] * 4 + [151643]
    ids = torch.tensor([row] * N).cuda()
    kw = dict(input_ids=ids, attention_mask=torch.ones_like(ids),
              pixel_values=px["pixel_values"].cuda().to(torch.bfloat16), image_grid_thw=grid.cuda(),
              mm_token_type_ids=(ids == 151655).to(torch.int32))
    embed(model, **kw)
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        embed(model, **kw)
        torch.cuda.synchronize()
    ka = prof.key_averages()
    for key in ("self_device_time_total", "self_cuda_time_total", "cuda_time_total"):
        try:
            table = ka.table(sort_by=key, row_limit=18, max_name_column_width=70)
            break
        except Exception:
            table = None
    print(f"== torch.profiler: HF, {N} images of {n_tok} tokens", file=sys.stderr)
    print(table, file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
