#!/usr/bin/env python3
"""Generates the llama.cpp-converted GGUF fixtures (tests/fixtures/gguf/) and their HF reference.

Runs where torch + transformers 5.x + tokenizers + safetensors + Pillow + numpy are installed (the
accelerator machine), with llama.cpp's converter (convert_hf_to_gguf.py, its conversion/ and
gguf-py/ folders, from the llama.cpp source node-llama-cpp bundles, Sep 2026, commit 80fb11a):

    python3 tools/gen_gguf_fixtures.py --data ../shared/data --llama LLAMA_SRC --out OUTDIR

It writes, under OUTDIR:
  models/m4-gguf-src/config.json + weights.json   a tiny Qwen2-VL (old `visual.*` layout, F32,
      vision depth 3) whose weights tools/mkmodel regenerates (tools/gen_reference.py's generator)
  expected/m4-gguf-src.jsonl   HF float32 reference vectors: text, image, text+image, two images
  gguf/m4-<t>.gguf, gguf/mmproj-m4-<t>.gguf for t in f32, f16, q8_0: llama.cpp's converter run
      without and with --mmproj on that checkpoint
  gguf/hashes.json   sha256 of every tensor's bytes of each GGUF (gguf-py's reader), so that our
      own quantize can be checked bit for bit against the converter on the same checkpoint.
The model is tiny on purpose (text hidden 8, so the whole F32 set is about 10 MB); its vision
matrices (K = 32, 64, 128) are Q8_0 in the q8_0 files, its text matrices with K = 8 stay F16 (the
converter's fallback when a row is not a whole number of blocks).
"""
import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gen_reference as gr  # noqa: E402

M4 = dict(name="m4-gguf-src", layout="old", config="flat", dtype="F32", shards=1, tie=True, seed=404,
          text=dict(hidden_size=8, num_hidden_layers=2, num_attention_heads=1, num_key_value_heads=1,
                    intermediate_size=64, mrope_section=[2, 1, 1]),
          vision=dict(depth=3, embed_dim=32, num_heads=2, mlp_ratio=2), commit_weights=True)

PREPROCESSOR = {"do_convert_rgb": True, "do_normalize": True, "do_rescale": True, "do_resize": True,
                "image_mean": [0.48145466, 0.4578275, 0.40821073],
                "image_std": [0.26862954, 0.26130258, 0.27577711],
                "image_processor_type": "Qwen2VLImageProcessor", "max_pixels": gr.MAX_PIXELS,
                "min_pixels": gr.MIN_PIXELS, "merge_size": 2, "patch_size": 14, "resample": 3,
                "rescale_factor": 0.00392156862745098, "temporal_patch_size": 2}


def tensor_hashes(path, llama):
    sys.path.insert(0, os.path.join(llama, "gguf-py"))
    from gguf import GGUFReader
    r = GGUFReader(path)
    out = {}
    for t in r.tensors:
        out[t.name] = {"type": t.tensor_type.name, "shape": [int(x) for x in t.shape],
                       "sha256": hashlib.sha256(bytes(t.data.tobytes())).hexdigest()}
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--llama", required=True, help="llama.cpp source (convert_hf_to_gguf.py)")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    import torch
    torch.backends.cuda.matmul.allow_tf32 = False
    device = "cuda" if torch.cuda.is_available() else "cpu"
    out = os.path.abspath(args.out)
    os.makedirs(out, exist_ok=True)
    tok = gr.build_tokenizer(args.data, out)
    model, _ = gr.build_model(M4, out)
    mdir = os.path.join(out, "models", M4["name"])
    # the HF directory the converter reads: config, weights, tokenizer, preprocessor config
    src = os.path.join(out, "hf-src")
    os.makedirs(src, exist_ok=True)
    for f in os.listdir(mdir):
        shutil.copy(os.path.join(mdir, f), src)
    from transformers import PreTrainedTokenizerFast
    PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=None, eos_token="<|im_end|>",
                            pad_token="<|endoftext|>", unk_token=None).save_pretrained(src)
    cfg, added = gr.tokenizer_fixture_files()   # Qwen2-VL's own tokenizer_config.json
    with open(os.path.join(src, "tokenizer_config.json"), "w") as f:
        json.dump(cfg, f, indent=2, ensure_ascii=False)
    with open(os.path.join(src, "preprocessor_config.json"), "w") as f:
        json.dump(PREPROCESSOR, f, indent=2)
    # the committed model: weights.json (tools/mkmodel regenerates the safetensors)
    st = {}
    from safetensors import safe_open
    with safe_open(os.path.join(mdir, "model.safetensors"), "pt") as f:
        for k in f.keys():
            st[k] = list(f.get_slice(k).get_shape())
    os.remove(os.path.join(mdir, "model.safetensors"))
    with open(os.path.join(mdir, "weights.json"), "w") as f:
        json.dump({"generator": "tools/gen_reference.py splitmix64", "seed": M4["seed"],
                   "dtype": M4["dtype"], "layout": M4["layout"], "tied": M4["tie"],
                   "tensors": dict(sorted(st.items()))}, f, indent=1)
    # reference vectors
    proc = gr.make_image_processor()
    model = model.to(device)
    edir = os.path.join(out, "expected")
    os.makedirs(edir, exist_ok=True)
    with open(os.path.join(edir, M4["name"] + ".jsonl"), "w", encoding="utf-8") as f:
        for item in gr.text_items(gr.LONG_TEXT) + gr.image_items(M4["name"]):
            rec = gr.embed_item(model, tok, proc, item, args.data, out, device)
            f.write(json.dumps(rec, ensure_ascii=False) + "\n")
    print("reference vectors done", flush=True)
    # llama.cpp's converter, without and with --mmproj
    gdir = os.path.join(out, "gguf")
    os.makedirs(gdir, exist_ok=True)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.path.join(args.llama, "gguf-py") + os.pathsep + env.get("PYTHONPATH", "")
    hashes = {}
    for t in ("f32", "f16", "q8_0"):
        for mm in (False, True):
            name = ("mmproj-m4-%s.gguf" if mm else "m4-%s.gguf") % t
            argv = [os.path.join(args.llama, "convert_hf_to_gguf.py"), src, "--outtype", t,
                    "--outfile", os.path.join(gdir, name)] + (["--mmproj"] if mm else [])
            r = subprocess.run([sys.executable] + argv, env=env, capture_output=True, text=True)
            if r.returncode != 0 and "pre-tokenizer was not recognized" in r.stdout + r.stderr:
                # the tokenizer is Qwen2's; only its fingerprint differs: say so and go on
                print("pre-tokenizer hash not recognised: forcing 'qwen2'", flush=True)
                wrap = ("import sys, runpy; sys.path.insert(0, %r); import conversion.base as b; "
                        "b.TextModel.get_vocab_base_pre = lambda self, tok: 'qwen2'; sys.argv = %r; "
                        "runpy.run_path(%r, run_name='__main__')" % (args.llama, argv, argv[0]))
                r = subprocess.run([sys.executable, "-c", wrap], env=env, capture_output=True, text=True)
            print("convert", t, "mmproj" if mm else "text", "rc", r.returncode, flush=True)
            if r.returncode != 0:
                print(r.stdout[-3000:], r.stderr[-6000:], flush=True)
                continue
            # --mmproj may prefix the name itself
            made = [n for n in os.listdir(gdir) if n.endswith(".gguf") and n not in hashes]
            for n in made:
                if n != name and "mmproj" in n and mm and not os.path.exists(os.path.join(gdir, name)):
                    os.rename(os.path.join(gdir, n), os.path.join(gdir, name))
            if os.path.exists(os.path.join(gdir, name)):
                hashes[name] = tensor_hashes(os.path.join(gdir, name), args.llama)
    with open(os.path.join(gdir, "hashes.json"), "w") as f:
        json.dump(hashes, f, indent=1, sort_keys=True)
    shutil.rmtree(src)
    print("files:", sorted(os.listdir(gdir)), flush=True)


if __name__ == "__main__":
    main()
