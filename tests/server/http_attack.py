#!/usr/bin/env python3
"""http_attack.py - raw-socket checks of the server's HTTP layer, as an attacker would try it.

  http_attack.py cases PORT            every malformed request of docs/server.md's hardening list:
                                       status, one well-formed response, OpenAI JSON error, UTF-8
  http_attack.py mutate PORT N SEED    N mutated requests (seeded): each gets a well-formed answer
                                       or a clean close, never a hang; good requests sent between
                                       them still get the exact vector
  http_attack.py maxconn PORT N        N connections held open; the next one gets 503 + Retry-After
  http_attack.py slowloris PORT SEC    a head trickled in is cut off with 408 after about SEC
Exit 0 = pass; each failure is printed."""
import json
import random
import socket
import sys
import time

FAILS = []


def fail(msg):
    FAILS.append(msg)
    print("FAIL:", msg)


def connect(port, timeout=10.0):
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.settimeout(timeout)
    return s


def recv_all(s, deadline):
    """Everything the server sends until it closes (or the deadline)."""
    out = b""
    while True:
        left = deadline - time.time()
        if left <= 0:
            return out, False
        s.settimeout(left)
        try:
            b = s.recv(65536)
        except socket.timeout:
            return out, False
        except ConnectionResetError:
            return out, True
        if not b:
            return out, True
        out += b


def parse_responses(data):
    """Splits data into responses (status, headers dict of lists, body). Raises on anything
    malformed: a bad status line, a bad header, a body shorter than Content-Length, trailing junk."""
    res = []
    while data:
        end = data.find(b"\r\n\r\n")
        if end < 0:
            raise ValueError("incomplete response head: %r" % data[:200])
        head = data[:end].decode("ascii")
        lines = head.split("\r\n")
        parts = lines[0].split(" ", 2)
        if len(parts) < 3 or parts[0] != "HTTP/1.1" or not parts[1].isdigit() or len(parts[1]) != 3:
            raise ValueError("bad status line %r" % lines[0])
        status = int(parts[1])
        hdrs = {}
        for ln in lines[1:]:
            k, sep, v = ln.partition(":")
            if not sep or not k or k != k.strip():
                raise ValueError("bad header line %r" % ln)
            hdrs.setdefault(k.lower(), []).append(v.strip())
        if status == 100:
            data = data[end + 4:]
            continue
        cl = hdrs.get("content-length")
        if not cl or len(cl) != 1 or not cl[0].isdigit():
            raise ValueError("response without one Content-Length: %r" % head)
        n = int(cl[0])
        body = data[end + 4:end + 4 + n]
        if len(body) != n:
            raise ValueError("body shorter than Content-Length (%d < %d)" % (len(body), n))
        res.append((status, hdrs, body))
        data = data[end + 4 + n:]
    return res


def check_error_body(status, hdrs, body, ctx):
    """An error must be the documented OpenAI JSON shape, in valid UTF-8."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        fail("%s: error body is not valid UTF-8: %r" % (ctx, body[:200]))
        return None
    try:
        j = json.loads(text)
    except ValueError:
        fail("%s: error body is not JSON: %r" % (ctx, text[:200]))
        return None
    e = j.get("error") if isinstance(j, dict) else None
    if not (isinstance(e, dict) and isinstance(e.get("message"), str) and isinstance(e.get("type"), str)
            and "param" in e and "code" in e):
        fail("%s: error body is not in the OpenAI shape: %r" % (ctx, text[:200]))
        return None
    if hdrs.get("content-type", [""])[0] != "application/json":
        fail("%s: error content type %r" % (ctx, hdrs.get("content-type")))
    if status in (429, 503) and "retry-after" not in hdrs:
        fail("%s: %d without Retry-After" % (ctx, status))
    return e


def exchange(port, raw, timeout=10.0, shut=True):
    s = connect(port, timeout)
    try:
        s.sendall(raw)
        if shut:
            s.shutdown(socket.SHUT_WR)
    except (BrokenPipeError, ConnectionResetError):
        pass
    data, closed = recv_all(s, time.time() + timeout)
    s.close()
    return data, closed


def expect(port, name, raw, status, code=None, n_responses=1):
    data, closed = exchange(port, raw)
    try:
        rs = parse_responses(data)
    except (ValueError, UnicodeDecodeError) as ex:
        fail("%s: malformed answer (%s): %r" % (name, ex, data[:300]))
        return None
    if len(rs) != n_responses:
        fail("%s: %d responses, want %d: %r" % (name, len(rs), n_responses, data[:300]))
        return None
    st, hdrs, body = rs[-1]
    if st != status:
        fail("%s: status %d, want %d: %r" % (name, st, status, body[:300]))
        return None
    if st >= 400:
        e = check_error_body(st, hdrs, body, name)
        if e is not None and code is not None and e.get("code") != code:
            fail("%s: code %r, want %r" % (name, e.get("code"), code))
    return rs


H = b"Host: t\r\n"
EMB = b'{"model":"m","input":"hello"}'


def post(body, extra=b"", cl=True):
    h = b"POST /v1/embeddings HTTP/1.1\r\n" + H + b"Content-Type: application/json\r\n" + extra
    if cl:
        h += b"Content-Length: %d\r\n" % len(body)
    return h + b"\r\n" + body


def chunked(body_chunks, extra=b""):
    raw = b"POST /v1/embeddings HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n" + extra + b"\r\n"
    return raw + body_chunks


def reference_vector(port):
    rs = expect(port, "reference", post(EMB), 200)
    return json.loads(rs[0][2])["data"][0]["embedding"] if rs else None


def cases(port):
    ref = reference_vector(port)
    expect(port, "HTTP/2.0 request line", b"GET /health HTTP/2.0\r\n\r\n", 505, "http_version_not_supported")
    expect(port, "HTTP/0.9 version", b"GET /health HTTP/0.9\r\n\r\n", 505, "http_version_not_supported")
    expect(port, "HTTP/0.9 request (no version)", b"GET /health\r\n\r\n", 400, "bad_request")
    expect(port, "garbage version", b"GET /health HTTX/1.1\r\n" + H + b"\r\n", 400)
    expect(port, "thousands of headers", b"GET /health HTTP/1.1\r\n" + H +
           b"".join(b"X-H%d: v\r\n" % i for i in range(3000)) + b"\r\n", 431)
    expect(port, "header without colon", b"GET /health HTTP/1.1\r\n" + H + b"NoColonHere\r\n\r\n", 400)
    expect(port, "space before colon", b"GET /health HTTP/1.1\r\n" + H + b"X-A : b\r\n\r\n", 400)
    expect(port, "obs-fold", b"GET /health HTTP/1.1\r\n" + H + b"X-A: b\r\n c\r\n\r\n", 400)
    expect(port, "bare LF", b"GET /health HTTP/1.1\nHost: t\n\n", 400)
    expect(port, "bare CR", b"GET /health HTTP/1.1\r\nHost: t\rX: y\r\n\r\n", 400)
    expect(port, "NUL in header", b"GET /health HTTP/1.1\r\n" + H + b"X-A: a\x00b\r\n\r\n", 400)
    expect(port, "no Host in HTTP/1.1", b"GET /health HTTP/1.1\r\n\r\n", 400)
    expect(port, "two Host headers", b"GET /health HTTP/1.1\r\n" + H + H + b"\r\n", 400)
    expect(port, "URI too long", b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\n" + H + b"\r\n", 414)
    expect(port, "head too large", b"GET /health HTTP/1.1\r\n" + H + b"X-Big: " + b"a" * 17000 + b"\r\n\r\n", 431)
    expect(port, "unknown Transfer-Encoding", post(EMB, b"Transfer-Encoding: gzip\r\n", cl=False), 501)
    expect(port, "unknown Expect", post(EMB, b"Expect: 200-ok\r\n"), 417)
    for v in [b"12abc", b"-5", b"0x1d", b"1e2", b"", b" ", b"+5", b"5, 5", b"5 5"]:
        expect(port, "Content-Length %r" % v, post(EMB, b"Content-Length: " + v + b"\r\n", cl=False), 400, "bad_request")
    expect(port, "huge Content-Length", post(EMB, b"Content-Length: 99999999999999999999999999\r\n", cl=False), 413,
           "request_too_large")
    expect(port, "two different Content-Length", post(EMB, b"Content-Length: 5\r\n"), 400, "bad_request")
    rs = expect(port, "two equal Content-Length", post(EMB, b"Content-Length: %d\r\n" % len(EMB)), 200)
    if rs and ref is not None and json.loads(rs[0][2])["data"][0]["embedding"] != ref:
        fail("two equal Content-Length: wrong vector")
    expect(port, "Content-Length and Transfer-Encoding",
           chunked(b"%x\r\n" % len(EMB) + EMB + b"\r\n0\r\n\r\n", b"Content-Length: %d\r\n" % len(EMB)), 400)
    for size in [b"zz", b"-1", b"0x10", b"fffffffffffffffffff", b"", b" 5"]:
        expect(port, "chunk size %r" % size, chunked(size + b"\r\n" + EMB + b"\r\n0\r\n\r\n"), 400, "bad_request")
    expect(port, "chunk data longer than its size", chunked(b"3\r\n" + EMB + b"\r\n0\r\n\r\n"), 400)
    rs = expect(port, "valid chunked body", chunked(b"5\r\n" + EMB[:5] + b"\r\n" + b"%x;ext=1\r\n" % (len(EMB) - 5) +
                                                   EMB[5:] + b"\r\n0\r\nX-Trailer: t\r\n\r\n"), 200)
    if rs and ref is not None and json.loads(rs[0][2])["data"][0]["embedding"] != ref:
        fail("valid chunked body: wrong vector")
    expect(port, "chunked in HTTP/1.0", b"POST /v1/embeddings HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400)
    rs = expect(port, "undecodable model id", b"GET /v1/models/%ff%fe HTTP/1.1\r\n" + H + b"\r\n", 404, "model_not_found")
    if rs and "\ufffd" not in rs[0][2].decode("utf-8"):
        fail("undecodable model id: bytes not replaced by U+FFFD")
    expect(port, "unknown route with bad UTF-8", b"GET /%c3%28/%e2%82 HTTP/1.1\r\n" + H + b"\r\n", 404, "unknown_url")
    expect(port, "bad percent escape", b"GET /v1/models/%zz HTTP/1.1\r\n" + H + b"\r\n", 400)
    expect(port, "encoded NUL", b"GET /v1/models/a%00b HTTP/1.1\r\n" + H + b"\r\n", 400)
    # a message truncated by the server in the middle of a two-byte character
    body = json.dumps({"model": "m", "input": [{"content": [{"type": "a" + "\u00e9" * 40, "text": "x"}]}]},
                      ensure_ascii=False).encode()
    expect(port, "truncated multibyte type", post(body), 400)
    body = json.dumps({"model": "m", "input": [{"content": [{"type": "\u00e9" * 300, "text": "x"}]}]},
                      ensure_ascii=False).encode()
    expect(port, "long multibyte type", post(body), 400)
    expect(port, "invalid UTF-8 in JSON", post(b'{"model":"m","input":"\xff\xfe"}'), 400)
    # pipelining: two requests in one write, two answers in order
    expect(port, "pipelined", b"GET /health HTTP/1.1\r\n" + H + b"\r\n" + post(EMB), 200, n_responses=2)
    # HEAD: headers only
    data, _ = exchange(port, b"HEAD /health HTTP/1.1\r\n" + H + b"Connection: close\r\n\r\n")
    if not data.startswith(b"HTTP/1.1 200 ") or not data.endswith(b"\r\n\r\n"):
        fail("HEAD /health: %r" % data[:200])
    # Expect: 100-continue gets 100 then the answer
    s = connect(port)
    s.sendall(post(EMB, b"Expect: 100-continue\r\n")[:-len(EMB)])
    first = s.recv(100)
    if not first.startswith(b"HTTP/1.1 100 Continue\r\n\r\n"):
        fail("Expect: 100-continue: %r" % first)
    s.sendall(EMB + b"")
    s.shutdown(socket.SHUT_WR)
    data, _ = recv_all(s, time.time() + 10)
    s.close()
    try:
        rs = parse_responses(data)
        if not rs or rs[-1][0] != 200:
            fail("Expect: 100-continue: no 200 after it: %r" % data[:200])
    except ValueError as ex:
        fail("Expect: 100-continue: %s" % ex)
    data, _ = exchange(port, b"GET /health HTTP/1.1\r\n" + H + b"\r\n")
    if not data.startswith(b"HTTP/1.1 200 "):
        fail("server no longer healthy after the cases: %r" % data[:200])


# ---- mutation ------------------------------------------------------------------------------------

SEEDS = [
    b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n",
    b"GET /v1/models HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    post(EMB),
    post(b'{"model":"m","input":["a","b"],"encoding_format":"base64"}'),
    chunked(b"%x\r\n" % len(EMB) + EMB + b"\r\n0\r\n\r\n"),
    post(b'{"model":"m","input":[{"text":"x","image":"data:image/png;base64,iVBORw0KGgo="}]}'),
    b"GET /v1/models/%41%42 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
]
TOKENS = [b"\r\n", b"\n", b"\r", b" ", b":", b"\x00", b"\xff", b"%", b"%ff", b"HTTP/1.1", b"HTTP/2.0",
          b"Content-Length: ", b"Transfer-Encoding: chunked\r\n", b"0\r\n\r\n", b"ffffffff", b"-1",
          b"\xc3", b"\xe2\x82", b"Expect: 100-continue\r\n", b"Host: y\r\n", b"\t", b"{", b"}", b'"']


def mutate(rng, data):
    d = bytearray(data)
    for _ in range(rng.randint(1, 6)):
        op = rng.randint(0, 6)
        pos = rng.randint(0, len(d)) if d else 0
        if op == 0 and d:
            d[rng.randrange(len(d))] = rng.randrange(256)
        elif op == 1 and d:
            del d[pos:pos + rng.randint(1, 16)]
        elif op == 2:
            d[pos:pos] = rng.choice(TOKENS)
        elif op == 3 and d:
            a = rng.randrange(len(d))
            d[pos:pos] = d[a:a + rng.randint(1, 64)]
        elif op == 4:
            d[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
        elif op == 5 and d:
            d = d[:pos]
        else:
            d[pos:pos] = rng.choice(TOKENS) * rng.randint(1, 200)
    return bytes(d)


def mutate_run(port, n, seed):
    rng = random.Random(seed)
    ref = reference_vector(port)
    statuses = {}
    closes = 0
    t0 = time.time()
    for i in range(n):
        raw = mutate(rng, rng.choice(SEEDS))
        try:
            data, closed = exchange(port, raw, timeout=10.0)
        except OSError as ex:
            fail("mutant %d: connect/send failed (%s) for %r" % (i, ex, raw[:200]))
            continue
        if not closed:
            fail("mutant %d: no answer and no close within 10 s: %r" % (i, raw[:200]))
            continue
        try:
            rs = parse_responses(data)
        except (ValueError, UnicodeDecodeError) as ex:
            fail("mutant %d: malformed answer (%s): req %r resp %r" % (i, ex, raw[:200], data[:300]))
            continue
        if not rs:
            closes += 1
        for st, hdrs, body in rs:
            statuses[st] = statuses.get(st, 0) + 1
            if st >= 500 and st not in (501, 503, 505):
                fail("mutant %d: server error %d: %r -> %r" % (i, st, raw[:200], body[:200]))
            if st >= 400:
                check_error_body(st, hdrs, body, "mutant %d" % i)
        if i % 250 == 0 and ref is not None:
            rs = expect(port, "good request among mutants", post(EMB), 200)
            if rs and json.loads(rs[0][2])["data"][0]["embedding"] != ref:
                fail("good request among mutants: vector changed")
        if len(FAILS) > 20:
            break
    print("mutate: %d requests in %.1f s, statuses %s, %d closed without an answer"
          % (n, time.time() - t0, dict(sorted(statuses.items())), closes))


def maxconn(port, n):
    held = [connect(port) for _ in range(n)]
    time.sleep(0.3)
    data, closed = exchange(port, b"GET /health HTTP/1.1\r\n" + H + b"\r\n", timeout=5)
    try:
        rs = parse_responses(data)
        if len(rs) != 1 or rs[0][0] != 503:
            fail("past --max-connections: %r" % data[:300])
        else:
            e = check_error_body(*rs[0], ctx="past --max-connections")
            if e and e.get("code") != "too_many_connections":
                fail("past --max-connections: code %r" % e.get("code"))
    except ValueError as ex:
        fail("past --max-connections: malformed (%s): %r" % (ex, data[:300]))
    for s in held:
        s.close()
    time.sleep(0.3)
    data, _ = exchange(port, b"GET /health HTTP/1.1\r\n" + H + b"\r\n", timeout=5)
    if not data.startswith(b"HTTP/1.1 200 "):
        fail("after the held connections closed: %r" % data[:200])


def slowloris(port, sec):
    s = connect(port, timeout=sec + 10)
    t0 = time.time()
    head = b"GET /health HTTP/1.1\r\nHost: t\r\n" + b"X-Slow: " + b"a" * 1000
    got = b""
    for b in head:
        try:
            s.sendall(bytes([b]))
        except OSError:
            break
        time.sleep(0.1)
        if time.time() - t0 > sec * 4 + 5:
            break
        s.setblocking(False)
        try:
            got += s.recv(4096)
        except BlockingIOError:
            pass
        except OSError:
            break
        s.setblocking(True)
        if got:
            break
    data, closed = recv_all(s, time.time() + 5)
    got += data
    dt = time.time() - t0
    try:
        rs = parse_responses(got)
        if len(rs) != 1 or rs[0][0] != 408:
            fail("slowloris: %r" % got[:200])
        else:
            check_error_body(*rs[0], ctx="slowloris")
    except ValueError as ex:
        fail("slowloris: malformed (%s) %r" % (ex, got[:200]))
    if not (sec * 0.8 <= dt <= sec + 3):
        fail("slowloris: cut off after %.2f s, want about %.2f" % (dt, sec))


def main():
    mode, port = sys.argv[1], int(sys.argv[2])
    if mode == "cases":
        cases(port)
    elif mode == "mutate":
        mutate_run(port, int(sys.argv[3]), int(sys.argv[4]))
    elif mode == "maxconn":
        maxconn(port, int(sys.argv[3]))
    elif mode == "slowloris":
        slowloris(port, float(sys.argv[3]))
    print("%s: %s" % (mode, "FAILED (%d)" % len(FAILS) if FAILS else "all checks passed"))
    sys.exit(1 if FAILS else 0)


if __name__ == "__main__":
    main()
