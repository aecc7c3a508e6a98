#!/usr/bin/env bash
# tools/st2gguf: the GGUF it writes is read back by an independent reader (Python, below) and
# checked field by field against the source checkpoint: header, every key llama.cpp's qwen2vl
# loader reads, the vocabulary (byte-level strings, types, padding, merges), tensor names, GGUF
# shapes ({in, out}), types, aligned contiguous offsets, and tensor data (exact copies, and
# F32 -> BF16 / F16 -> BF16 rounding). Then the failure paths: exit codes, messages, no file left.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
source "$ROOT/tests/lib/modeldir.sh"
require_data
BIN="$TKR_BUILD/tools/st2gguf"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0
check() { # check NAME EXIT-CODE
  if [ "$2" -eq 0 ]; then echo "ok   $1"; else echo "FAIL $1"; fails=$((fails+1)); fi
}
make_model_dir m1-flat-f32 "$tmp/m1"
make_model_dir m2-nested-f16-sharded "$tmp/m2"

cat > "$tmp/check.py" <<'PY'
import json, struct, sys, os

def read_gguf(path):
    data = open(path, "rb").read()
    pos = 0
    def take(fmt):
        nonlocal pos
        v = struct.unpack_from("<" + fmt, data, pos)
        pos += struct.calcsize("<" + fmt)
        return v[0]
    def string():
        nonlocal pos
        n = take("Q")
        s = data[pos:pos + n].decode("utf-8")
        pos += n
        return s
    scalar = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}
    def value(t):
        if t == 8: return string()
        if t == 9:
            et, n = take("I"), take("Q")
            return [value(et) for _ in range(n)]
        return take(scalar[t])
    assert data[:4] == b"GGUF", data[:4]
    pos = 4
    version, n_tensors, n_kv = take("I"), take("q"), take("q")
    kv, types = {}, {}
    for _ in range(n_kv):
        k = string(); t = take("I")
        assert k not in kv, "duplicate key " + k
        kv[k] = value(t); types[k] = t
    tensors = []
    for _ in range(n_tensors):
        name = string(); nd = take("I")
        ne = [take("q") for _ in range(nd)]
        tensors.append({"name": name, "ne": ne, "type": take("I"), "offset": take("Q")})
    align = kv.get("general.alignment", 32)
    start = (pos + align - 1) // align * align
    return version, kv, types, tensors, start, data

def safetensors(dir):
    out = {}
    for f in sorted(os.listdir(dir)):
        if not f.endswith(".safetensors"): continue
        raw = open(os.path.join(dir, f), "rb").read()
        n = struct.unpack_from("<Q", raw, 0)[0]
        hdr = json.loads(raw[8:8 + n])
        for k, v in hdr.items():
            if k == "__metadata__": continue
            b, e = v["data_offsets"]
            out[k.replace("model.language_model.", "model.")] = (v["dtype"], v["shape"], raw[8 + n + b:8 + n + e])
    return out

def f32_to_bf16(b):  # round to nearest even, as the converter
    out = bytearray()
    for (u,) in struct.iter_unpack("<I", b):
        out += struct.pack("<H", ((u + 0x7FFF + ((u >> 16) & 1)) >> 16) & 0xFFFF)
    return bytes(out)

def f16_to_bf16(b):
    return f32_to_bf16(b"".join(struct.pack("<f", x) for (x,) in struct.iter_unpack("<e", b)))

model, gguf, mode = sys.argv[1], sys.argv[2], sys.argv[3]
version, kv, types, tensors, start, data = read_gguf(gguf)
cfg = json.load(open(os.path.join(model, "config.json")))
tc = cfg.get("text_config", cfg)
L, D, I = tc["num_hidden_layers"], tc["hidden_size"], tc["intermediate_size"]
H, KV = tc["num_attention_heads"], tc["num_key_value_heads"]
hd = D // H
assert version == 3
expect = {"general.architecture": "qwen2vl", "qwen2vl.context_length": 32768,
          "qwen2vl.embedding_length": D, "qwen2vl.block_count": L, "qwen2vl.feed_forward_length": I,
          "qwen2vl.attention.head_count": H, "qwen2vl.attention.head_count_kv": KV,
          "qwen2vl.rope.dimension_sections": [2, 1, 1, 0], "tokenizer.ggml.model": "gpt2",
          "tokenizer.ggml.pre": "qwen2", "tokenizer.ggml.bos_token_id": 151643,
          "tokenizer.ggml.eos_token_id": 151645, "tokenizer.ggml.padding_token_id": 151643,
          "tokenizer.ggml.add_bos_token": False, "general.alignment": 32,
          "qwen2vl.pooling_type": 0 if mode == "none" else 3}
for k, v in expect.items():
    assert kv.get(k) == v, (k, kv.get(k), v)
u32_keys = [k for k in expect if isinstance(expect[k], int) and not isinstance(expect[k], bool)]
assert all(types[k] == 4 for k in u32_keys), [(k, types[k]) for k in u32_keys]
assert types["qwen2vl.rope.dimension_sections"] == 9 and types["qwen2vl.rope.freq_base"] == 6
assert abs(kv["qwen2vl.attention.layer_norm_rms_epsilon"] - 1e-6) < 1e-12
assert kv["qwen2vl.rope.freq_base"] == 1e6

tok, tt = kv["tokenizer.ggml.tokens"], kv["tokenizer.ggml.token_type"]
vocab = json.load(open(os.path.join(model, "vocab.json")))
assert len(tok) == len(tt) == 151936
assert all(tok[i] == s for s, i in vocab.items()), "vocab.json strings not at their ids"
assert tok[9707] == "Hello" and tok[1879] == "\u0120world" and tt[9707] == 1
assert tok[151645] == "<|im_end|>" and tt[151645] == 3 and tok[151656] == "<|video_pad|>" and tt[151656] == 3
assert tok[151657] == "[PAD151657]" and tt[151935] == 5 and tt[151657] == 5
assert sum(1 for t in tt if t == 1) == len(vocab) and sum(1 for t in tt if t == 3) == 14
merges = [l.rstrip("\r\n") for l in open(os.path.join(model, "merges.txt"), encoding="utf-8")]
merges = [m for m in merges[1 if merges[0].startswith("#version") else 0:] if m]
assert kv["tokenizer.ggml.merges"] == merges, "merges differ"

names = ["token_embd.weight", "output_norm.weight"]
for l in range(L):
    names += ["blk.%d.%s" % (l, s) for s in ("attn_norm.weight", "attn_q.weight", "attn_q.bias", "attn_k.weight",
              "attn_k.bias", "attn_v.weight", "attn_v.bias", "attn_output.weight", "ffn_norm.weight",
              "ffn_gate.weight", "ffn_up.weight", "ffn_down.weight")]
src = safetensors(model)
untied = "lm_head.weight" in src and not cfg.get("tie_word_embeddings", False)
if untied: names.append("output.weight")
assert sorted(t["name"] for t in tensors) == sorted(names), sorted(t["name"] for t in tensors)
mat_type = {"bf16": 30, "none": 30, "f16": 1, "f32": 0}[mode]
size = {0: 4, 1: 2, 30: 2}
shapes = {"token_embd.weight": [D, 151936], "output.weight": [D, 151936], "output_norm.weight": [D],
          "blk.0.attn_q.weight": [D, H * hd], "blk.0.attn_k.weight": [D, KV * hd], "blk.0.attn_k.bias": [KV * hd],
          "blk.0.attn_output.weight": [H * hd, D], "blk.0.ffn_gate.weight": [D, I], "blk.0.ffn_down.weight": [I, D]}
off = 0
for t in tensors:
    if t["name"] in shapes: assert t["ne"] == shapes[t["name"]], (t["name"], t["ne"])
    is_mat = t["name"].endswith(".weight") and len(t["ne"]) == 2
    assert t["type"] == (mat_type if is_mat else 0), (t["name"], t["type"])
    assert t["offset"] == off, (t["name"], t["offset"], off)
    n = size[t["type"]]
    for d in t["ne"]: n *= d
    t["bytes"] = data[start + off:start + off + n]
    off += (n + 31) // 32 * 32
assert len(data) == start + off, (len(data), start + off)

def hf(name):
    return {"token_embd.weight": "model.embed_tokens.weight", "output.weight": "lm_head.weight",
            "blk.1.ffn_down.weight": "model.layers.1.mlp.down_proj.weight",
            "blk.0.attn_norm.weight": "model.layers.0.input_layernorm.weight",
            "blk.1.attn_v.bias": "model.layers.1.self_attn.v_proj.bias"}[name]
by = {t["name"]: t["bytes"] for t in tensors}
checked = 0
for name in ("token_embd.weight", "blk.1.ffn_down.weight", "blk.0.attn_norm.weight", "blk.1.attn_v.bias", "output.weight"):
    if name not in by: continue
    dt, shape, raw = src[hf(name)]
    want_type = mat_type if name.endswith(".weight") and len(shape) == 2 else 0
    if (dt, want_type) in (("F32", 0), ("F16", 1), ("BF16", 30)): want = raw
    elif (dt, want_type) == ("F32", 30): want = f32_to_bf16(raw)
    elif (dt, want_type) == ("F16", 30): want = f16_to_bf16(raw)
    elif (dt, want_type) == ("F16", 0): want = b"".join(struct.pack("<f", x) for (x,) in struct.iter_unpack("<e", raw))
    else: raise AssertionError("no expectation for %s %s -> %d" % (name, dt, want_type))
    assert by[name] == want, name + " data differs from the source"
    checked += 1
assert checked >= 4, checked
print("checked", len(tensors), "tensors,", checked, "data blocks")
PY

# m1: F32 source, flat layout, tied: default BF16 matrices (rounded), F32 copy, --pooling none
"$BIN" "$tmp/m1" "$tmp/m1.gguf" > "$tmp/out" 2>&1; rc=$?
check "m1 -> bf16 converts" $rc
grep -q "26 tensors, 151936 tokens, 151387 merges" "$tmp/out"; check "m1 summary line" $?
python3 "$tmp/check.py" "$tmp/m1" "$tmp/m1.gguf" bf16; check "m1 bf16: keys, vocab, tensors, data" $?
"$BIN" "$tmp/m1" "$tmp/m1-f32.gguf" --type f32 >/dev/null && python3 "$tmp/check.py" "$tmp/m1" "$tmp/m1-f32.gguf" f32
check "m1 f32: exact copy" $?
"$BIN" "$tmp/m1" "$tmp/m1-none.gguf" --pooling none >/dev/null && python3 "$tmp/check.py" "$tmp/m1" "$tmp/m1-none.gguf" none
check "m1 --pooling none" $?
# m2: F16 shards, nested config, untied lm_head -> output.weight
"$BIN" "$tmp/m2" "$tmp/m2.gguf" --type f16 >/dev/null && python3 "$tmp/check.py" "$tmp/m2" "$tmp/m2.gguf" f16
check "m2 f16 (sharded, untied): exact copy, output.weight" $?
"$BIN" "$tmp/m2" "$tmp/m2-bf16.gguf" >/dev/null && python3 "$tmp/check.py" "$tmp/m2" "$tmp/m2-bf16.gguf" bf16
check "m2 f16 -> bf16 rounding" $?

# failures: exit code, a message naming the problem, and no output (nor .tmp) left behind
expect_fail() { # NAME EXPECTED-RC PATTERN ARGS...
  local name=$1 want=$2 pat=$3 err rc; shift 3
  err=$("$BIN" "$@" 2>&1 >/dev/null); rc=$?
  if [ $rc -eq "$want" ] && grep -qi -- "$pat" <<<"$err" && [ ! -e "$tmp/bad.gguf" ] && [ ! -e "$tmp/bad.gguf.tmp" ]; then
    echo "ok   $name"
  else
    echo "FAIL $name (rc=$rc: $err)"; fails=$((fails+1))
  fi
}
expect_fail "usage: no args" 2 "usage"
expect_fail "usage: bad --type" 2 "usage" "$tmp/m1" "$tmp/bad.gguf" --type q4_0
expect_fail "missing model dir" 1 "config.json" "$tmp/nope" "$tmp/bad.gguf"
cp -r "$tmp/m1" "$tmp/nomerges"; rm "$tmp/nomerges/merges.txt"
expect_fail "missing merges.txt" 1 "merges.txt" "$tmp/nomerges" "$tmp/bad.gguf"
cp -r "$tmp/m1" "$tmp/badmerge"; rm "$tmp/badmerge/merges.txt"; printf '#version: 0.2\nab\n' > "$tmp/badmerge/merges.txt"
expect_fail "malformed merge line" 1 "merges.txt:2" "$tmp/badmerge" "$tmp/bad.gguf"
cp -r "$tmp/m1" "$tmp/bigid"; rm "$tmp/bigid/vocab.json"; printf '{"a": 0, "b": 999999}' > "$tmp/bigid/vocab.json"
expect_fail "vocab id outside the embedding table" 1 "999999" "$tmp/bigid" "$tmp/bad.gguf"
cp -r "$tmp/m1" "$tmp/dupid"; rm "$tmp/dupid/vocab.json"; printf '{"a": 5, "b": 5}' > "$tmp/dupid/vocab.json"
expect_fail "two tokens with one id" 1 "id 5" "$tmp/dupid" "$tmp/bad.gguf"
cp -r "$tmp/m1" "$tmp/noadded"; rm "$tmp/noadded/added_tokens.json" "$tmp/noadded/tokenizer_config.json"
expect_fail "no added tokens" 1 "added tokens" "$tmp/noadded" "$tmp/bad.gguf"
cp -r "$tmp/m1" "$tmp/notensor"; rm "$tmp/notensor/model.safetensors"
python3 - "$ROOT/tests/fixtures/models/m1-flat-f32/model.safetensors" "$tmp/notensor/model.safetensors" <<'PY'
import json, struct, sys
raw = open(sys.argv[1], "rb").read(); n = struct.unpack_from("<Q", raw)[0]; hdr = json.loads(raw[8:8 + n])
drop = "model.layers.1.self_attn.v_proj.bias"; b, e = hdr[drop]["data_offsets"]; del hdr[drop]
body = raw[8 + n:8 + n + b] + raw[8 + n + e:]
for v in hdr.values():
    if isinstance(v, dict) and "data_offsets" in v and v["data_offsets"][0] >= e:
        v["data_offsets"] = [v["data_offsets"][0] - (e - b), v["data_offsets"][1] - (e - b)]
h = json.dumps(hdr).encode(); open(sys.argv[2], "wb").write(struct.pack("<Q", len(h)) + h + body)
PY
expect_fail "missing tensor" 1 "v_proj.bias" "$tmp/notensor" "$tmp/bad.gguf"
expect_fail "unwritable output" 1 "cannot create" "$tmp/m1" "$tmp/no/such/dir/bad.gguf"

[ "$fails" -eq 0 ]
