#!/usr/bin/env python3
"""/metrics of a GPU server: tests/gpu/check_metrics.py PORT SERVE_LOG
Sends one embedding request, then checks the GPU gauges (weights, activations, total, pinned host
> 0), the device name line, and that the server logged the GPU batch budgets (256 items).
Exit 0 = all present; prints the GPU lines."""
import re
import sys
import urllib.request

port, log = sys.argv[1], sys.argv[2]
base = "http://127.0.0.1:%s" % port
req = urllib.request.Request(base + "/v1/embeddings", data=b'{"model":"m","input":["a cat on a mat","a dog"]}',
                             headers={"Content-Type": "application/json"})
urllib.request.urlopen(req, timeout=30).read()
text = urllib.request.urlopen(base + "/metrics", timeout=30).read().decode()
lines = [l for l in text.splitlines() if re.match(r"tkr_(gpu|pinned|device)", l)]
print("\n".join(lines))
val = {}
for l in lines:
    k, v = l.rsplit(" ", 1)
    val[k] = float(v)
bad = [k for k in ('tkr_gpu_memory_bytes{kind="weights"}', 'tkr_gpu_memory_bytes{kind="activations"}',
                   "tkr_gpu_memory_total_bytes", "tkr_pinned_host_bytes") if val.get(k, 0) <= 0]
if not any(l.startswith('tkr_device_info{device="cuda:0 ') for l in lines):
    bad.append("tkr_device_info")
budgets = [l for l in open(log, errors="replace") if "batch budgets" in l]
print(budgets[-1].strip() if budgets else "no batch budgets line")
if not budgets or "batch budgets: 256 items" not in budgets[-1]:
    bad.append("GPU batch budgets")
print("missing or zero: " + ", ".join(bad) if bad else "GPU gauges, device name and budgets present")
sys.exit(1 if bad else 0)
