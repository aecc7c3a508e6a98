#!/usr/bin/env python3
"""Generates tkr-embed's reference fixtures with HF transformers (the ground truth).

Runs where torch + transformers 5.x + tokenizers + safetensors + Pillow are installed (the
accelerator machine; no internet needed). Usage:

    python3 tools/gen_reference.py --data ../shared/data --out OUTDIR

It writes, under OUTDIR (the layout of tests/fixtures/):
  models/<name>/config.json (+ safetensors for the small models, or weights.json for a model
      whose weights the C tool tools/mkmodel.c regenerates from the same seed: too big for git)
  expected/<name>.jsonl      one line per item: prompt, input_ids, prompt_tokens, embedding
  tokenizer/hf_reference.jsonl   HF tokenizer ids for test strings
  images/pil_reference.json  Pillow decode/resize hashes and pixel_values statistics
  images/*.png|jpg           small synthetic images (CMYK JPEG, RGBA, tiny, large)

Every model weight is drawn from a counter-based generator (splitmix64 of seed ^ fnv1a64(name)
and the element index) so that C can regenerate exactly the same values (tools/mkmodel.c);
weights are rounded to the storage dtype and the float32 reference runs on the rounded values.
The reference follows the Ops-MM-embedding-v1 recipe: prompt, last token of hidden_states[-1],
L2 normalisation; float32, eager attention, one item per forward pass (no padding).
"""
import argparse
import hashlib
import io
import json
import math
import os
import shutil
import sys

import numpy as np
import torch
from PIL import Image

MASK64 = (1 << 64) - 1
GOLDEN = 0x9E3779B97F4A7C15
DEFAULT_INSTRUCTION = "You are a helpful assistant."
MIN_PIXELS = 256 * 28 * 28
MAX_PIXELS = 1280 * 28 * 28

ADDED_TOKENS = [
    (151643, "<|endoftext|>"), (151644, "<|im_start|>"), (151645, "<|im_end|>"),
    (151646, "<|object_ref_start|>"), (151647, "<|object_ref_end|>"), (151648, "<|box_start|>"),
    (151649, "<|box_end|>"), (151650, "<|quad_start|>"), (151651, "<|quad_end|>"),
    (151652, "<|vision_start|>"), (151653, "<|vision_end|>"), (151654, "<|vision_pad|>"),
    (151655, "<|image_pad|>"), (151656, "<|video_pad|>"),
]
PRETOKENIZE_REGEX = (r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}|"""
                     r""" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+""")


# ---- deterministic weights ----------------------------------------------------------------

def fnv1a64(s):
    h = 0xCBF29CE484222325
    for b in s.encode("utf-8"):
        h ^= b
        h = (h * 0x100000001B3) & MASK64
    return h


def splitmix_uniform(seed, name, n):
    """u[i] in [0, 1): splitmix64 of (seed ^ fnv1a64(name)) + (i + 1) * GOLDEN, top 24 bits."""
    z0 = np.uint64((seed ^ fnv1a64(name)) & MASK64)
    out = np.empty(n, dtype=np.float64)
    chunk = 1 << 24
    with np.errstate(over="ignore"):
        for start in range(0, n, chunk):
            i = np.arange(start + 1, min(n, start + chunk) + 1, dtype=np.uint64)
            z = z0 + i * np.uint64(GOLDEN)
            z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
            z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
            z = z ^ (z >> np.uint64(31))
            out[start:start + len(i)] = (z >> np.uint64(40)).astype(np.float64) * (1.0 / (1 << 24))
    return out


def init_rule(name, shape):
    """(center, half_width) of the uniform distribution for a tensor (mirrored in mkmodel.c)."""
    if name.endswith(".bias"):
        return 0.0, 0.1
    if len(shape) == 1:  # RMSNorm / LayerNorm weights
        return 1.0, 0.2
    if "embed_tokens" in name:
        return 0.0, 1.0
    fan_in = 1
    for d in shape[1:]:
        fan_in *= d
    return 0.0, 1.0 / math.sqrt(fan_in)


TORCH_DTYPES = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16}


def make_tensor(seed, name, shape, dtype):
    n = 1
    for d in shape:
        n *= d
    center, half = init_rule(name, shape)
    u = splitmix_uniform(seed, name, n)
    v = (center + half * (2.0 * u - 1.0)).astype(np.float32)
    t = torch.from_numpy(v).reshape(shape).to(TORCH_DTYPES[dtype])
    return t


def canonical_name(hf_key):
    """HF 5.x state_dict key -> the pre-4.52 layout name used to seed the generator."""
    if hf_key.startswith("model.language_model."):
        return "model." + hf_key[len("model.language_model."):]
    if hf_key.startswith("model.visual."):
        return "visual." + hf_key[len("model.visual."):]
    return hf_key


# ---- models -------------------------------------------------------------------------------

MODELS = [
    # name, layout, config shape, dtype, shards, tie, seed, text dims, vision dims, committed
    dict(name="m1-flat-f32", layout="old", config="flat", dtype="F32", shards=1, tie=True, seed=101,
         text=dict(hidden_size=16, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1,
                   intermediate_size=40, mrope_section=[2, 1, 1]),
         vision=dict(depth=2, embed_dim=32, num_heads=2, mlp_ratio=2), commit_weights=True),
    dict(name="m2-nested-f16-sharded", layout="new", config="nested", dtype="F16", shards=2, tie=False,
         seed=202,
         text=dict(hidden_size=24, num_hidden_layers=3, num_attention_heads=3, num_key_value_heads=1,
                   intermediate_size=56, mrope_section=[2, 1, 1]),
         vision=dict(depth=2, embed_dim=48, num_heads=4, mlp_ratio=4), commit_weights=True),
    dict(name="m3-h128-bf16", layout="old", config="flat", dtype="BF16", shards=1, tie=True, seed=303,
         text=dict(hidden_size=768, num_hidden_layers=2, num_attention_heads=6, num_key_value_heads=1,
                   intermediate_size=512, mrope_section=[16, 24, 24]),
         vision=dict(depth=1, embed_dim=160, num_heads=2, mlp_ratio=4), commit_weights=False),
]


def flat_config(m):
    t, v = m["text"], m["vision"]
    return {
        "architectures": ["Qwen2VLForConditionalGeneration"],
        "attention_dropout": 0.0,
        "bos_token_id": 151643,
        "eos_token_id": 151645,
        "vision_start_token_id": 151652,
        "vision_end_token_id": 151653,
        "vision_token_id": 151654,
        "image_token_id": 151655,
        "video_token_id": 151656,
        "hidden_act": "silu",
        "hidden_size": t["hidden_size"],
        "initializer_range": 0.02,
        "intermediate_size": t["intermediate_size"],
        "max_position_embeddings": 32768,
        "max_window_layers": t["num_hidden_layers"],
        "model_type": "qwen2_vl",
        "num_attention_heads": t["num_attention_heads"],
        "num_hidden_layers": t["num_hidden_layers"],
        "num_key_value_heads": t["num_key_value_heads"],
        "rms_norm_eps": 1e-06,
        "rope_theta": 1000000.0,
        "sliding_window": 32768,
        "tie_word_embeddings": m["tie"],
        "torch_dtype": {"F32": "float32", "F16": "float16", "BF16": "bfloat16"}[m["dtype"]],
        "transformers_version": "4.41.2",
        "use_cache": True,
        "use_sliding_window": False,
        "vision_config": {
            "depth": v["depth"], "embed_dim": v["embed_dim"], "mlp_ratio": v["mlp_ratio"],
            "num_heads": v["num_heads"], "in_chans": 3, "hidden_size": t["hidden_size"],
            "patch_size": 14, "spatial_merge_size": 2, "spatial_patch_size": 14,
            "temporal_patch_size": 2,
        },
        "rope_scaling": {"type": "mrope", "mrope_section": t["mrope_section"]},
        "vocab_size": 151936,
    }


def build_model(m, out_dir):
    from transformers import Qwen2VLConfig, Qwen2VLForConditionalGeneration
    mdir = os.path.join(out_dir, "models", m["name"])
    os.makedirs(mdir, exist_ok=True)
    flat = flat_config(m)
    if m["config"] == "flat":
        with open(os.path.join(mdir, "config.json"), "w") as f:
            json.dump(flat, f, indent=2)
        cfg = Qwen2VLConfig.from_pretrained(mdir)
    else:
        text_keys = {k: flat[k] for k in ("hidden_size", "intermediate_size", "num_hidden_layers",
                                           "num_attention_heads", "num_key_value_heads", "rms_norm_eps",
                                           "vocab_size", "max_position_embeddings", "hidden_act",
                                           "rope_theta", "rope_scaling", "bos_token_id", "eos_token_id")}
        cfg = Qwen2VLConfig(text_config=text_keys, vision_config=flat["vision_config"],
                            tie_word_embeddings=m["tie"], image_token_id=151655, video_token_id=151656,
                            vision_start_token_id=151652, vision_end_token_id=151653)
        cfg.save_pretrained(mdir)
    cfg._attn_implementation = "eager"
    try:
        cfg.text_config._attn_implementation = "eager"
        cfg.vision_config._attn_implementation = "eager"
    except Exception:
        pass
    torch.manual_seed(0)
    model = Qwen2VLForConditionalGeneration(cfg).to(torch.float32).eval()
    sd = model.state_dict()
    new_sd = {}
    stored = {}
    for key, val in sd.items():
        if m["tie"] and key == "lm_head.weight":
            continue
        name = canonical_name(key)
        t = make_tensor(m["seed"], name, list(val.shape), m["dtype"])
        stored[key] = t
        new_sd[key] = t.to(torch.float32)
    if m["tie"]:
        new_sd["lm_head.weight"] = new_sd["model.language_model.embed_tokens.weight"]
    missing, unexpected = model.load_state_dict(new_sd, strict=False)
    assert not unexpected, unexpected
    assert all(k == "lm_head.weight" for k in missing), missing
    if m["tie"]:
        model.tie_weights()
    # check the weights really are ours
    emb = model.get_input_embeddings().weight
    assert torch.equal(emb, new_sd["model.language_model.embed_tokens.weight"])
    save_weights(m, mdir, stored)
    return model, cfg


def save_weights(m, mdir, stored):
    from safetensors.torch import save_file
    if not m["commit_weights"]:
        meta = {"generator": "tools/gen_reference.py splitmix64", "seed": m["seed"],
                "dtype": m["dtype"], "layout": m["layout"], "tied": m["tie"],
                "tensors": {canonical_name(k): list(v.shape) for k, v in sorted(stored.items())}}
        with open(os.path.join(mdir, "weights.json"), "w") as f:
            json.dump(meta, f, indent=1)
        return
    if m["layout"] == "old":
        named = {canonical_name(k): v.contiguous() for k, v in stored.items()}
    else:
        named = {k: v.contiguous() for k, v in stored.items()}
    if m["shards"] == 1:
        save_file(named, os.path.join(mdir, "model.safetensors"), metadata={"format": "pt"})
        return
    keys = sorted(named)
    # put the big embedding/lm_head tensors in different shards
    shards = [dict() for _ in range(m["shards"])]
    for i, k in enumerate(keys):
        shards[i % m["shards"]][k] = named[k]
    weight_map = {}
    total = 0
    for i, part in enumerate(shards):
        fname = "model-%05d-of-%05d.safetensors" % (i + 1, m["shards"])
        save_file(part, os.path.join(mdir, fname), metadata={"format": "pt"})
        for k, v in part.items():
            weight_map[k] = fname
            total += v.numel() * v.element_size()
    with open(os.path.join(mdir, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=2)


# ---- tokenizer ----------------------------------------------------------------------------

def build_tokenizer(data_dir, work_dir):
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers
    from tokenizers import AddedToken
    qdir = os.path.join(data_dir, "tokenizers", "qwen2")
    with open(os.path.join(qdir, "vocab.json"), encoding="utf-8") as f:
        vocab = json.load(f)
    merges = []
    with open(os.path.join(qdir, "merges.txt"), encoding="utf-8") as f:
        for i, line in enumerate(f):
            line = line.rstrip("\n")
            if i == 0 and line.startswith("#version"):
                continue
            if line:
                a, b = line.split(" ")
                merges.append((a, b))
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, byte_fallback=False, dropout=None,
                               unk_token=None, continuing_subword_prefix="", end_of_word_suffix="",
                               fuse_unk=False))
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False, trim_offsets=False),
    ])
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([AddedToken(s, special=True, normalized=False) for _, s in ADDED_TOKENS])
    for i, s in ADDED_TOKENS:
        assert tok.token_to_id(s) == i, (s, tok.token_to_id(s))
    return tok


def tokenizer_fixture_files():
    """tokenizer_config.json and added_tokens.json as the Qwen2-VL repos carry them."""
    added = {s: i for i, s in ADDED_TOKENS}
    decoder = {str(i): {"content": s, "lstrip": False, "normalized": False, "rstrip": False,
                        "single_word": False, "special": True} for i, s in ADDED_TOKENS}
    cfg = {"add_prefix_space": False, "added_tokens_decoder": decoder,
           "additional_special_tokens": ["<|im_start|>", "<|im_end|>", "<|object_ref_start|>",
                                         "<|object_ref_end|>", "<|box_start|>", "<|box_end|>",
                                         "<|quad_start|>", "<|quad_end|>", "<|vision_start|>",
                                         "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>",
                                         "<|video_pad|>"],
           "bos_token": None, "clean_up_tokenization_spaces": False, "eos_token": "<|im_end|>",
           "errors": "replace", "model_max_length": 32768, "pad_token": "<|endoftext|>",
           "split_special_tokens": False, "tokenizer_class": "Qwen2Tokenizer", "unk_token": None}
    return cfg, added


TOKENIZER_STRINGS = [
    "", " ", "  ", "\t", "\n", "\r\n", "Hello world", " Hello world", "Hello World!!!",
    "I'LL don't we're THEY'VE it's", "  leading spaces   and trailing   ", "a\n\n\nb",
    "tabs\tand\ttabs\t\t", "numbers 1234567890 and 3.14159 and 1,000,000",
    "日本語のテキストです。", "中文测试：你好，世界！", "한국어 텍스트", "ภาษาไทย", "हिन्दी पाठ",
    "العربية نص", "עברית", "Ελληνικά κείμενο", "Русский текст", "emoji 😀👍🏽👨‍👩‍👧‍👦 🇯🇵",
    "Cafe\u0301 (combining accent, NFC)", "ﬁ ligature and ①②③ and Ⅻ", "x²+y²=z²",
    "def f(x):\n    return x ** 2  # comment\n", "if (a && b) { return c->d[0]; }",
    "<|im_start|>user\nhi<|im_end|>", "a<|im_end|>b", "<|endoftext|><|endoftext|>",
    "<|vision_start|><|image_pad|><|vision_end|>text", "<|im_start |> not special",
    "supercalifragilisticexpialidocious" * 3, "http://example.com/path?q=1&r=2#frag",
    "   \n  \n", "word\u00a0nbsp\u3000ideographic space", "zero\u200bwidth", "MiXeD CaSe 'S 'T 'Re",
]


# ---- images -------------------------------------------------------------------------------

def smart_resize(h, w, factor=28, min_pixels=MIN_PIXELS, max_pixels=MAX_PIXELS):
    """Ops-MM's smart_resize (ops_mm_embedding_v1.py, as the spec quotes it; the same as GME's):
    round to the factor, fit the pixel range, then clamp an aspect ratio over 200."""
    h_bar = max(factor, round(h / factor) * factor)
    w_bar = max(factor, round(w / factor) * factor)
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt((h * w) / max_pixels)
        h_bar = math.floor(h / beta / factor) * factor
        w_bar = math.floor(w / beta / factor) * factor
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (h * w))
        h_bar = math.ceil(h * beta / factor) * factor
        w_bar = math.ceil(w * beta / factor) * factor
    if max(h_bar, w_bar) / min(h_bar, w_bar) > 200:
        if h_bar > w_bar:
            h_bar = w_bar * 200
        else:
            w_bar = h_bar * 200
    return h_bar, w_bar


def fetch_image(path):
    img = Image.open(path)
    img = img.convert("RGB")
    w, h = img.size
    rh, rw = smart_resize(h, w)
    return img.resize((rw, rh))


def make_image_processor():
    """The HF Qwen2-VL image processor (whichever backend this transformers has)."""
    import transformers
    errors = []
    for name in ("Qwen2VLImageProcessor", "Qwen2VLImageProcessorFast", "Qwen2VLImageProcessorPil"):
        cls = getattr(transformers, name, None)
        if cls is None:
            continue
        for kwargs in (dict(min_pixels=MIN_PIXELS, max_pixels=MAX_PIXELS),
                       dict(size={"shortest_edge": MIN_PIXELS, "longest_edge": MAX_PIXELS}), {}):
            try:
                p = cls(**kwargs)
                print("image processor:", name, kwargs, flush=True)
                return p
            except Exception as e:
                errors.append("%s%s: %s" % (name, kwargs, e))
    raise RuntimeError("no Qwen2-VL image processor: " + "; ".join(errors))


def synthetic_images(out_dir):
    """Small images made here so every colour conversion and size edge is covered."""
    d = os.path.join(out_dir, "images")
    os.makedirs(d, exist_ok=True)
    rng = np.random.default_rng(7)
    made = []
    yy, xx = np.mgrid[0:120, 0:160]
    base = np.stack([(xx * 255 // 159), (yy * 255 // 119), ((xx + yy) * 255 // 278)], -1).astype(np.uint8)
    noise = rng.integers(0, 40, size=base.shape, dtype=np.uint8)
    rgb = np.clip(base.astype(int) + noise, 0, 255).astype(np.uint8)
    Image.fromarray(rgb, "RGB").convert("CMYK").save(os.path.join(d, "syn-cmyk.jpg"), quality=90)
    made.append("syn-cmyk.jpg")
    alpha = ((xx * 3 + yy * 2) % 256).astype(np.uint8)
    Image.fromarray(np.dstack([rgb, alpha]), "RGBA").save(os.path.join(d, "syn-rgba.png"))
    made.append("syn-rgba.png")
    Image.fromarray(rgb[:20, :30], "RGB").save(os.path.join(d, "syn-tiny-30x20.png"))
    made.append("syn-tiny-30x20.png")
    yy2, xx2 = np.mgrid[0:1200, 0:1600]
    big = np.stack([(xx2 * 255 // 1599), (yy2 * 255 // 1199), ((xx2 // 40 + yy2 // 40) % 2) * 200],
                   -1).astype(np.uint8)
    Image.fromarray(big, "RGB").save(os.path.join(d, "syn-large-1600x1200.jpg"), quality=80)
    made.append("syn-large-1600x1200.jpg")
    Image.fromarray(rgb[:, :, 0], "L").save(os.path.join(d, "syn-gray.png"))
    made.append("syn-gray.png")
    Image.fromarray(np.dstack([rgb[:, :, 1], alpha]), "LA").save(os.path.join(d, "syn-la.png"))
    made.append("syn-la.png")
    pal = Image.fromarray(rgb, "RGB").quantize(colors=16)
    pal.info["transparency"] = 3
    pal.save(os.path.join(d, "syn-palette-trns.png"), transparency=3)
    made.append("syn-palette-trns.png")
    g16 = (xx.astype(np.uint32) * 400 + yy.astype(np.uint32) * 7).astype(np.uint16)
    Image.fromarray(g16, "I;16").save(os.path.join(d, "syn-gray16.png"))
    made.append("syn-gray16.png")
    Image.fromarray(rgb, "RGB").save(os.path.join(d, "syn-progressive.jpg"), quality=85,
                                     progressive=True)
    made.append("syn-progressive.jpg")
    Image.fromarray(rgb, "RGB").save(os.path.join(d, "syn-lossy.webp"), quality=80)
    made.append("syn-lossy.webp")
    Image.fromarray(np.dstack([rgb, alpha]), "RGBA").save(os.path.join(d, "syn-lossless-alpha.webp"),
                                                          lossless=True)
    made.append("syn-lossless-alpha.webp")
    yy3, xx3 = np.mgrid[0:12, 0:3000]
    wide = np.stack([(xx3 * 255 // 2999), (yy3 * 20), ((xx3 // 50) % 2) * 255], -1).astype(np.uint8)
    Image.fromarray(wide, "RGB").save(os.path.join(d, "syn-wide-3000x12.png"))
    made.append("syn-wide-3000x12.png")
    return made


def pil_reference(data_dir, out_dir, synthetic):
    proc = make_image_processor()
    entries = []
    files = []
    for sub in ("photos", "pngsuite", "seeds", "malformed"):
        p = os.path.join(data_dir, "images", sub)
        for fn in sorted(os.listdir(p)):
            if fn.split(".")[-1].lower() in ("png", "jpg", "jpeg", "webp", "gif", "bmp", "tiff"):
                files.append(("images/%s/%s" % (sub, fn), os.path.join(p, fn), False))
    for fn in synthetic:
        files.append(("images/" + fn, os.path.join(out_dir, "images", fn), True))
    for rel, path, fixture in files:
        e = {"file": rel}
        if fixture:
            e["fixture"] = True
        try:
            im = Image.open(path)
            e["pil_mode"] = im.mode
            e["format"] = im.format
            rgb = im.convert("RGB")
        except Exception as ex:
            e["pil_error"] = "%s: %s" % (type(ex).__name__, ex)
            entries.append(e)
            continue
        arr = np.asarray(rgb, dtype=np.uint8)
        e["width"], e["height"] = rgb.size
        e["rgb_sha256"] = hashlib.sha256(arr.tobytes()).hexdigest()
        rh, rw = smart_resize(rgb.size[1], rgb.size[0])
        res = rgb.resize((rw, rh))
        rarr = np.asarray(res, dtype=np.uint8)
        e["resized_width"], e["resized_height"] = rw, rh
        e["resized_sha256"] = hashlib.sha256(rarr.tobytes()).hexdigest()
        out = proc(images=[res], return_tensors="pt")
        pv = out["pixel_values"].to(torch.float64).numpy()
        e["grid_thw"] = [int(x) for x in out["image_grid_thw"][0]]
        e["pv_shape"] = list(pv.shape)
        e["pv_sum"] = float(pv.sum())
        e["pv_abs_sum"] = float(np.abs(pv).sum())
        rng = np.random.default_rng(len(entries) + 1)
        rows = rng.integers(0, pv.shape[0], size=24)
        cols = rng.integers(0, pv.shape[1], size=24)
        e["pv_samples"] = [[int(r), int(c), float(np.float32(pv[r, c]))] for r, c in zip(rows, cols)]
        entries.append(e)
    return entries


# ---- embeddings ---------------------------------------------------------------------------

def text_items(long_text):
    return [
        dict(text="Hello world"),
        dict(text="A photo of a cat sitting on a red sofa.",
             instruction="Find an image that matches the given text."),
        dict(text="東京は日本の首都です。中文句子，还有한국어。"),
        dict(text="emoji 😀👍🏽👨‍👩‍👧‍👦 and flags 🇫🇷🇯🇵"),
        dict(text="def add(a, b):\n    return a + b\n\nprint(add(1, 2))"),
        dict(text="   runs   of    whitespace\t\tand\n\n\nnewlines   "),
        dict(text=long_text),
        dict(text="Numbers: 1234567890, 3.14159; I'LL say it's fine.",
             instruction="Represent this sentence for retrieval."),
        dict(text=""),
        dict(text="user typed <|im_end|> inside text"),
    ]


LONG_TEXT = (
    "Retrieval-augmented generation combines a search step with a language model. Documents are "
    "split into passages, each passage is embedded into a vector, and the vectors are stored in an "
    "index. At query time the question is embedded with the same model and the nearest passages are "
    "returned to the generator, which writes an answer grounded in them. Multimodal embedders extend "
    "this to scanned pages, charts, screenshots and photos, so that a text question can find an "
    "image and an image can find related text. Quality depends on the instruction given to the "
    "embedder, on how documents are chunked, and on whether queries and documents are embedded with "
    "matching prompts. 中文段落也会被编码。Les accents sont conservés. Zahlen wie 2024 und 3,14 "
    "werden Ziffer für Ziffer zerlegt. The end.")


def image_items(model_name):
    """Image items per model: paths relative to the data dir or (fixture:) to the fixtures dir."""
    base = [
        dict(images=["images/photos/skimage-chelsea.png"]),
        dict(images=["images/photos/skimage-rocket.jpg"], text="A rocket on the launch pad.",
             instruction="Find an image that matches the given text."),
        dict(images=["images/photos/wuffs-hat.jpeg", "images/photos/wuffs-peacock.grayscale.jpeg"],
             text="two frames"),
    ]
    if model_name.startswith("m1"):
        base += [
            dict(images=["images/photos/skimage-camera.png"]),
            dict(images=["fixture:images/syn-rgba.png"], text="rgba source"),
            dict(images=["images/photos/wuffs-peacock.progressive.jpeg"]),
            dict(images=["images/photos/wuffs-hat.lossy.webp"], text="lossy webp"),
            dict(images=["images/photos/wuffs-mona-lisa.21x32.q50.jpeg"]),
            dict(images=["fixture:images/syn-large-1600x1200.jpg"]),
            dict(images=["fixture:images/syn-cmyk.jpg"]),
        ]
    if model_name.startswith("m3"):
        base = [dict(images=["images/photos/wuffs-mona-lisa.21x32.q50.jpeg"], text="tiny image",
                     instruction="Find an image that matches the given text.")]
    return base


def build_prompt(item, n_tokens_per_image):
    instr = item.get("instruction") or DEFAULT_INSTRUCTION
    vis = "".join("<|vision_start|>" + "<|image_pad|>" * n + "<|vision_end|>" for n in n_tokens_per_image)
    return ("<|im_start|>system\n%s<|im_end|>\n<|im_start|>user\n%s%s<|im_end|>\n"
            "<|im_start|>assistant\n<|endoftext|>" % (instr, vis, item.get("text") or ""))


@torch.no_grad()
def embed_item(model, tok, proc, item, data_dir, out_dir, device):
    images = []
    for p in item.get("images", []):
        path = os.path.join(out_dir, p[len("fixture:"):]) if p.startswith("fixture:") else os.path.join(data_dir, p)
        images.append(fetch_image(path))
    kwargs = {}
    counts = []
    if images:
        out = proc(images=images, return_tensors="pt")
        grid = out["image_grid_thw"]
        counts = [int(g.prod()) // 4 for g in grid]
        kwargs["pixel_values"] = out["pixel_values"].to(device, torch.float32)
        kwargs["image_grid_thw"] = grid.to(device)
    prompt = build_prompt(item, counts)
    ids = tok.encode(prompt, add_special_tokens=False).ids
    input_ids = torch.tensor([ids], dtype=torch.long, device=device)
    kwargs["mm_token_type_ids"] = (input_ids == 151655).to(torch.int32)
    out = model(input_ids=input_ids, attention_mask=torch.ones_like(input_ids), return_dict=True,
                output_hidden_states=True, **kwargs)
    h = out.hidden_states[-1][0, -1, :].to(torch.float64)
    e = torch.nn.functional.normalize(h, p=2, dim=-1)
    rec = {k: item[k] for k in ("text", "instruction", "images") if k in item}
    rec["input_ids"] = ids
    rec["prompt_tokens"] = len(ids)
    rec["image_tokens"] = counts
    rec["embedding"] = [float(x) for x in e.cpu().numpy()]
    return rec


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--strings", default=None, help="extra tokenizer strings (JSON array)")
    ap.add_argument("--hf-saved", default=None, help="also write HF save_pretrained copies here")
    args = ap.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    device = "cuda" if torch.cuda.is_available() else "cpu"
    os.makedirs(args.out, exist_ok=True)

    tok = build_tokenizer(args.data, args.out)
    cfg, added = tokenizer_fixture_files()
    qdir = os.path.join(args.out, "qwen2vl")
    os.makedirs(qdir, exist_ok=True)
    with open(os.path.join(qdir, "tokenizer_config.json"), "w") as f:
        json.dump(cfg, f, indent=2, ensure_ascii=False)
    with open(os.path.join(qdir, "added_tokens.json"), "w") as f:
        json.dump(added, f, indent=2, ensure_ascii=False)

    strings = list(TOKENIZER_STRINGS)
    if args.strings and os.path.exists(args.strings):
        with open(args.strings, encoding="utf-8") as f:
            strings += [s for s in json.load(f) if s not in strings]
    tdir = os.path.join(args.out, "tokenizer")
    os.makedirs(tdir, exist_ok=True)
    with open(os.path.join(tdir, "hf_reference.jsonl"), "w", encoding="utf-8") as f:
        for s in strings:
            f.write(json.dumps({"text": s, "ids": tok.encode(s, add_special_tokens=False).ids},
                               ensure_ascii=False) + "\n")
    print("tokenizer strings:", len(strings), flush=True)

    synthetic = synthetic_images(args.out)
    entries = pil_reference(args.data, args.out, synthetic)
    with open(os.path.join(args.out, "images", "pil_reference.json"), "w") as f:
        json.dump(entries, f, indent=1)
    print("image entries:", len(entries), flush=True)

    proc = make_image_processor()
    edir = os.path.join(args.out, "expected")
    os.makedirs(edir, exist_ok=True)
    for m in MODELS:
        model, _ = build_model(m, args.out)
        model = model.to(device)
        with open(os.path.join(edir, m["name"] + ".jsonl"), "w", encoding="utf-8") as f:
            extra = []
            if m["name"].startswith("m2"):
                extra = [dict(text=t) for t in strings if t]
            if m["name"].startswith("m1"):
                extra = [dict(images=["fixture:images/syn-wide-3000x12.png"], text="very wide")]
            for item in text_items(LONG_TEXT) + image_items(m["name"]) + extra:
                rec = embed_item(model, tok, proc, item, args.data, args.out, device)
                f.write(json.dumps(rec, ensure_ascii=False) + "\n")
        print("model", m["name"], "done", flush=True)
        if m["name"].startswith("m1") and args.hf_saved:
            hdir = os.path.join(args.hf_saved, "m1-save-pretrained")
            model.to("cpu").save_pretrained(hdir)
            from transformers import PreTrainedTokenizerFast
            ft = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=None, eos_token="<|im_end|>",
                                         pad_token="<|endoftext|>", unk_token=None)
            ft.save_pretrained(hdir)
        del model
        torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
