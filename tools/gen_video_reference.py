#!/usr/bin/env python3
"""HF reference vectors for video items: frames in, as MTEB's Ops-MM wrapper feeds them.

Runs where torch + transformers 5.x + tokenizers + Pillow are (the accelerator machine):

    python3 tools/gen_video_reference.py --data DATA --frames DIR --out OUTDIR

DIR/manifest.json lists the items: {"name", "text", "frames": [PNG paths relative to DIR, in the
item's order]}; the PNGs are what `tkr-embed render --video` wrote (the frames tkr-embed decoded).
For each item, on the fixture model m1-flat-f32 (weights regenerated exactly as
tools/gen_reference.py does), it writes OUTDIR/m1-video.jsonl with:
  embedding      every frame through Ops-MM's fetch_image (smart_resize 256..1280 tokens, Pillow
                 BICUBIC; the processor's own resize is then the identity): what tkr-embed computes
  embedding_hf_resize   the raw frames straight into the HF processor, which resizes them itself
                 (the wrapper's literal path with transformers' default image processor), for the
                 record: its backend's resampling is not Pillow's
Both: one item per forward pass, float32, eager attention, last token of hidden_states[-1], L2."""
import argparse
import json
import os
import sys

import torch
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gen_reference as G  # noqa: E402


@torch.no_grad()
def embed(model, tok, proc, images, text, device):
    out = proc(images=images, return_tensors="pt")
    grid = out["image_grid_thw"]
    counts = [int(g.prod()) // 4 for g in grid]
    prompt = G.build_prompt({"text": text}, counts)
    ids = tok.encode(prompt, add_special_tokens=False).ids
    input_ids = torch.tensor([ids], dtype=torch.long, device=device)
    o = model(input_ids=input_ids, attention_mask=torch.ones_like(input_ids), return_dict=True,
              output_hidden_states=True, pixel_values=out["pixel_values"].to(device, torch.float32),
              image_grid_thw=grid.to(device), mm_token_type_ids=(input_ids == 151655).to(torch.int32))
    h = o.hidden_states[-1][0, -1, :].to(torch.float64)
    return [float(x) for x in torch.nn.functional.normalize(h, p=2, dim=-1).cpu().numpy()], len(ids), counts


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--frames", required=True)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    device = "cuda" if torch.cuda.is_available() else "cpu"
    os.makedirs(a.out, exist_ok=True)
    tok = G.build_tokenizer(a.data, a.out)
    proc = G.make_image_processor()
    m = [x for x in G.MODELS if x["name"] == "m1-flat-f32"][0]
    model, _ = G.build_model(m, os.path.join(a.out, "work"))
    model = model.to(device)
    with open(os.path.join(a.frames, "manifest.json")) as f:
        items = json.load(f)
    with open(os.path.join(a.out, "m1-video.jsonl"), "w") as f:
        for it in items:
            paths = [os.path.join(a.frames, p) for p in it["frames"]]
            e1, n1, c1 = embed(model, tok, proc, [G.fetch_image(p) for p in paths], it["text"], device)
            raw = [Image.open(p).convert("RGB") for p in paths]
            e2, n2, c2 = embed(model, tok, proc, raw, it["text"], device)
            cos = sum(x * y for x, y in zip(e1, e2))
            rec = dict(name=it["name"], text=it["text"], n_frames=len(paths), prompt_tokens=n1,
                       image_tokens=c1, embedding=e1, embedding_hf_resize=e2,
                       hf_resize_prompt_tokens=n2, cos_pillow_vs_hf_resize=cos)
            f.write(json.dumps(rec) + "\n")
            print(it["name"], len(paths), "frames", n1, "tokens; cos(pillow, hf resize) = %.9f" % cos, flush=True)


if __name__ == "__main__":
    main()
