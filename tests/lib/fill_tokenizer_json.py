#!/usr/bin/env python3
"""Rebuilds a real HF tokenizer.json from the committed skeleton (everything HF 5.17 wrote except
the vocabulary and merges) and the shared Qwen2 vocab.json + merges.txt.

usage: fill_tokenizer_json.py SKELETON.json QWEN2_DIR OUT.json"""
import json
import sys

skel, qdir, out = sys.argv[1:4]
d = json.load(open(skel, encoding="utf-8"))
d["model"]["vocab"] = json.load(open(qdir + "/vocab.json", encoding="utf-8"))
merges = []
with open(qdir + "/merges.txt", encoding="utf-8") as f:
    for i, line in enumerate(f):
        line = line.rstrip("\n")
        if (i == 0 and line.startswith("#version")) or not line:
            continue
        merges.append(line.split(" "))
d["model"]["merges"] = merges
with open(out, "w", encoding="utf-8") as f:
    json.dump(d, f, ensure_ascii=False)
