#!/usr/bin/env python3
"""replica_load.py - load through nginx while a replica dies: CLIENTS threads send embedding
requests to PORT for SECONDS; every answer must be 200 with the reference vector. Writes one line
per second to stdout's summary. Usage: replica_load.py PORT SECONDS CLIENTS"""
import json
import sys
import threading
import time
import urllib.request

PORT, SECONDS, CLIENTS = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
BODY = json.dumps({"model": "m", "input": ["replica test text", "second item"]}).encode()
lock = threading.Lock()
stats = {"ok": 0, "failed": 0, "wrong_vector": 0}
errors = []
ref = None


def one():
    req = urllib.request.Request("http://127.0.0.1:%d/v1/embeddings" % PORT, data=BODY,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return r.status, json.loads(r.read())["data"]


def client(until):
    global ref
    while time.time() < until:
        try:
            st, data = one()
            with lock:
                if ref is None:
                    ref = data
                if data != ref:
                    stats["wrong_vector"] += 1
                else:
                    stats["ok"] += 1
        except Exception as ex:  # any failure a client would see
            with lock:
                stats["failed"] += 1
                if len(errors) < 10:
                    errors.append(repr(ex))


until = time.time() + SECONDS
ts = [threading.Thread(target=client, args=(until,)) for _ in range(CLIENTS)]
for t in ts:
    t.start()
for t in ts:
    t.join()
print("replica_load: %d ok, %d failed, %d wrong vectors" % (stats["ok"], stats["failed"], stats["wrong_vector"]))
for e in errors:
    print("  error:", e)
sys.exit(0 if stats["failed"] == 0 and stats["wrong_vector"] == 0 and stats["ok"] > 0 else 1)
