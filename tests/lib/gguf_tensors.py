#!/usr/bin/env python3
"""Reads a GGUF file (pure Python, independent of the C reader) and prints or checks its tensors.

usage: gguf_tensors.py FILE.gguf                       one line per tensor: name type shape sha256
       gguf_tensors.py FILE.gguf --check HASHES.json KEY
           every tensor of HASHES.json[KEY] (written by tools/gen_gguf_fixtures.py from
           llama.cpp's converter output: {name: {type, shape, sha256}}) must be in FILE with the
           same type, shape and bytes, and FILE must have no other tensor. Exit 0 only then.
       gguf_tensors.py FILE.gguf --keys                  print the metadata keys and scalar values
"""
import hashlib
import json
import struct
import sys

TYPES = {0: ("F32", 1, 4), 1: ("F16", 1, 2), 2: ("Q4_0", 32, 18), 8: ("Q8_0", 32, 34),
         12: ("Q4_K", 256, 144), 14: ("Q6_K", 256, 210), 30: ("BF16", 1, 2)}
SCALAR = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}


def read(path):
    data = open(path, "rb").read()
    pos = 4
    if data[:4] != b"GGUF":
        raise ValueError("not a GGUF file")

    def take(fmt):
        nonlocal pos
        v = struct.unpack_from("<" + fmt, data, pos)[0]
        pos += struct.calcsize("<" + fmt)
        return v

    def string():
        nonlocal pos
        n = take("Q")
        s = data[pos:pos + n].decode("utf-8")
        pos += n
        return s

    def value(t):
        if t == 8:
            return string()
        if t == 9:
            et, n = take("I"), take("Q")
            return [value(et) for _ in range(n)]
        return take(SCALAR[t])

    version, nt, nkv = take("I"), take("q"), take("q")
    kv = {}
    for _ in range(nkv):
        k = string()
        kv[k] = value(take("I"))
    infos = []
    for _ in range(nt):
        name = string()
        nd = take("I")
        ne = [take("q") for _ in range(nd)]
        ty, off = take("I"), take("Q")
        infos.append((name, ne, ty, off))
    align = kv.get("general.alignment", 32)
    base = (pos + align - 1) // align * align
    tensors = {}
    for name, ne, ty, off in infos:
        tname, blk, bsz = TYPES[ty]
        n = 1
        for d in ne:
            n *= d
        size = n // blk * bsz
        raw = data[base + off:base + off + size]
        tensors[name] = {"type": tname, "shape": list(reversed(ne)),
                         "sha256": hashlib.sha256(raw).hexdigest()}
    return version, kv, tensors


def main():
    path = sys.argv[1]
    _, kv, tensors = read(path)
    if "--keys" in sys.argv:
        for k, v in kv.items():
            print(k, v if not isinstance(v, list) else "[%d values]" % len(v))
        return 0
    if "--check" not in sys.argv:
        for k, v in tensors.items():
            print(k, v["type"], v["shape"], v["sha256"])
        return 0
    i = sys.argv.index("--check")
    ref = json.load(open(sys.argv[i + 1]))[sys.argv[i + 2]]
    bad = 0
    for name, r in sorted(ref.items()):
        t = tensors.get(name)
        # gguf-py reports shapes innermost first; ours are row-major
        if t is None:
            print("FAIL %s: missing" % name)
        elif t["type"] != r["type"] or t["shape"] != list(reversed(r["shape"])) or t["sha256"] != r["sha256"]:
            print("FAIL %s: %s %s vs llama.cpp %s %s%s" % (name, t["type"], t["shape"], r["type"],
                  list(reversed(r["shape"])), "" if t["sha256"] == r["sha256"] else " (bytes differ)"))
        else:
            continue
        bad += 1
    for name in sorted(set(tensors) - set(ref)):
        print("FAIL %s: not in llama.cpp's file" % name)
        bad += 1
    print("%s: %d tensors, %d differ from llama.cpp's %s" % (path, len(tensors), bad, sys.argv[i + 2]))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
