#!/usr/bin/env python3
"""soak.py - a soak test of a running server: CLIENTS threads for SECONDS on loopback, a bounded
loop each, mixing valid text and image items (checked against a reference vector), invalid JSON,
oversized bodies, bad images, clients that disconnect mid-body or while queued, and slow readers.
Samples the server's RSS, open descriptors and threads every second from /proc/PID.

  soak.py PORT PID SECONDS CLIENTS [IMAGE]

Passes when: every answer is 200 or an expected 4xx/429/503-for-overload; good requests get their
exact vector; RSS, descriptors and threads over the last 80 % of the run stay within 5 % of their
level after warm-up (plus a small absolute slack); /health answers 200 at the end. Prints figures."""
import base64
import json
import random
import socket
import sys
import threading
import time

PORT, PID, SECONDS, CLIENTS = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
IMAGE = open(sys.argv[5], "rb").read() if len(sys.argv) > 5 else None
lock = threading.Lock()
counts = {}
fails = []


def note(k):
    with lock:
        counts[k] = counts.get(k, 0) + 1


def fail(msg):
    with lock:
        if len(fails) < 20:
            fails.append(msg)


def request(raw, timeout=30, read=True, slow=False):
    s = socket.create_connection(("127.0.0.1", PORT), timeout=timeout)
    try:
        s.sendall(raw)
        if not read:
            return None, None
        if slow:
            time.sleep(0.5)
        data = b""
        while True:
            b = s.recv(4096 if slow else 65536)
            if not b:
                break
            data += b
            if slow:
                time.sleep(0.01)
            end = data.find(b"\r\n\r\n")
            if end >= 0:
                head = data[:end].decode("latin-1")
                n = 0
                for ln in head.split("\r\n")[1:]:
                    k, _, v = ln.partition(":")
                    if k.lower() == "content-length":
                        n = int(v)
                if len(data) >= end + 4 + n:
                    return int(head.split(" ")[1]), data[end + 4:end + 4 + n]
        return None, data
    finally:
        s.close()


def post(body, extra=b""):
    return (b"POST /v1/embeddings HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Type: application/json\r\n"
            + extra + b"Content-Length: %d\r\n\r\n" % len(body) + body)


GOOD = json.dumps({"model": "m", "input": ["soak text one", "and another text"]}).encode()
REF = None


def client(i, until):
    global REF
    rng = random.Random(i)
    while time.time() < until:
        kind = rng.choices(["good", "image", "badjson", "big", "badimg", "cut", "queued", "slow", "health"],
                           [30, 8 if IMAGE else 0, 10, 5, 8, 8, 6, 6, 5])[0]
        try:
            if kind == "good":
                st, body = request(post(GOOD))
                if st == 200:
                    v = json.loads(body)["data"]
                    with lock:
                        if REF is None:
                            REF = v
                    if v != REF:
                        fail("good request: vectors differ")
                note("%s %s" % (kind, st))
                if st not in (200, 429):
                    fail("good request got %s %r" % (st, body[:200] if body else body))
            elif kind == "image":
                b64 = base64.b64encode(IMAGE).decode()
                st, body = request(post(json.dumps({"model": "m", "input": [{"text": "pic", "image": b64}]}).encode()))
                note("%s %s" % (kind, st))
                if st not in (200, 429):
                    fail("image request got %s %r" % (st, body[:200] if body else body))
            elif kind == "badjson":
                st, _ = request(post(b'{"model": "m", "input": ["unterminated'))
                note("%s %s" % (kind, st))
                if st != 400:
                    fail("invalid JSON got %s" % st)
            elif kind == "big":
                st, _ = request(b"POST /v1/embeddings HTTP/1.1\r\nHost: t\r\nContent-Length: 99999999\r\n\r\n" + b"x" * 1000)
                note("%s %s" % (kind, st))
                if st != 413:
                    fail("oversized body got %s" % st)
            elif kind == "badimg":
                bad = base64.b64encode(b"\x89PNG\r\n\x1a\n" + bytes(rng.randrange(256) for _ in range(200))).decode()
                st, _ = request(post(json.dumps({"model": "m", "input": [{"image": bad}]}).encode()))
                note("%s %s" % (kind, st))
                if st not in (400, 429):
                    fail("bad image got %s" % st)
            elif kind == "cut":
                raw = post(GOOD)
                request(raw[:len(raw) - 10], read=False)
                note("cut mid-body")
            elif kind == "queued":
                raw = post(GOOD)
                s = socket.create_connection(("127.0.0.1", PORT), timeout=10)
                s.sendall(raw)
                time.sleep(rng.random() * 0.05)
                s.close()
                note("left while queued")
            elif kind == "slow":
                st, _ = request(post(GOOD), slow=True)
                note("slow reader %s" % st)
                if st not in (200, 429):
                    fail("slow reader got %s" % st)
            else:
                st, _ = request(b"GET /health HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
                note("health %s" % st)
                if st != 200:
                    fail("health got %s" % st)
        except (OSError, ValueError) as ex:
            note("client error")
            fail("%s: %s" % (kind, ex))


def proc_sample():
    with open("/proc/%d/status" % PID) as f:
        st = f.read()
    rss = int([ln for ln in st.splitlines() if ln.startswith("VmRSS:")][0].split()[1])
    thr = int([ln for ln in st.splitlines() if ln.startswith("Threads:")][0].split()[1])
    import os
    fds = len(os.listdir("/proc/%d/fd" % PID))
    return rss, fds, thr


def main():
    t0 = time.time()
    until = t0 + SECONDS
    ts = [threading.Thread(target=client, args=(i, until), daemon=True) for i in range(CLIENTS)]
    for t in ts:
        t.start()
    samples = []
    while time.time() < until:
        time.sleep(1.0)
        samples.append((time.time() - t0,) + proc_sample())
    for t in ts:
        t.join(60)
    time.sleep(1.5)
    after = proc_sample()
    st, _ = request(b"GET /health HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    if st != 200:
        fail("/health after the soak: %s" % st)
    warm = [s for s in samples if s[0] >= SECONDS * 0.2]
    if len(warm) >= 3:
        base = warm[0]
        for idx, name, slack in ((1, "RSS kB", 4096), (2, "descriptors", 2 * CLIENTS + 8), (3, "threads", 2 * CLIENTS + 4)):
            hi = max(s[idx] for s in warm)
            lo = min(s[idx] for s in warm)
            # flat: the spread over the measured part stays within 5 % of the warm-up level (the
            # slack covers connections that are open at one sample and closed at the next)
            if hi - lo > base[idx] * 0.05 + slack:
                fail("%s not flat: %d..%d after warm-up (start of the window %d)" % (name, lo, hi, base[idx]))
    total = sum(v for k, v in counts.items())
    print("soak: %d s, %d clients, %d requests: %s" % (SECONDS, CLIENTS, total, json.dumps(dict(sorted(counts.items())))))
    if samples:
        print("soak: RSS %d kB at 1 s, %d kB at the end of warm-up, %d kB at the end, %d kB after; descriptors %d -> %d;"
              " threads %d -> %d" % (samples[0][1], warm[0][1] if warm else 0, samples[-1][1], after[0], samples[0][2],
                                     after[1], samples[0][3], after[2]))
    for f in fails:
        print("FAIL:", f)
    print("soak: %s" % ("FAILED" if fails else "all checks passed"))
    sys.exit(1 if fails else 0)


if __name__ == "__main__":
    main()
