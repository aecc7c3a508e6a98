#!/usr/bin/env python3
"""fake_hub.py - a small stand-in for the Hugging Face Hub, for tests/cli/test_hub.sh.

Serves the repositories under ROOT (ROOT/<org>/<name>/<files>) with the Hub's routes and headers:
  GET  /api/models/<org>/<name>/revision/<rev>      {"id", "sha", "siblings": [{"rfilename"}]}
  HEAD/GET /<org>/<name>/resolve/<rev>/<file>       small files: 200 + ETag (git blob sha1);
        large ones (LFS): 302 to /cdn/<sha256> with X-Linked-Etag / X-Linked-Size; X-Repo-Commit
  GET  /cdn/<sha256>                                the bytes, with Range requests (206)
Revisions: ROOT/<org>/<name>/ is "main"; ROOT/<org>/<name>@<rev>/ is branch or tag <rev>; each
also answers to its commit (a sha1 of its files).
Faults, set with POST /_faults (JSON), cleared with {}:
  require_token: "T"   every route but /cdn answers 401 without "Authorization: Bearer T"
  drop_once: "file"    the first /cdn transfer of that file stops half-way (connection closed)
  wrong_hash: "file"   /cdn serves that file with one byte changed
  redirect_loop: true  resolve answers a redirect to itself
  slow: true           /cdn sends nothing for 30 s after the headers
Every request is appended to LOG as "METHOD PATH RANGE".
"""
import hashlib, json, os, sys, threading, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ROOT, PORT_FILE, LOG = sys.argv[1], sys.argv[2], sys.argv[3]
FAULTS = {}
DROPPED = set()
LOCK = threading.Lock()


def repo_dirs():
    out = {}
    for org in sorted(os.listdir(ROOT)):
        for name in sorted(os.listdir(os.path.join(ROOT, org))):
            repo, _, rev = name.partition("@")
            out.setdefault(f"{org}/{repo}", {})[rev or "main"] = os.path.join(ROOT, org, name)
    return out


def snapshot(path):
    files = {}
    for dirpath, _, names in os.walk(path):
        for n in names:
            full = os.path.join(dirpath, n)
            rel = os.path.relpath(full, path)
            data = open(full, "rb").read()
            lfs = len(data) > 1000 or rel.endswith((".safetensors", ".gguf"))
            files[rel] = {"data": data, "lfs": lfs, "sha256": hashlib.sha256(data).hexdigest(),
                          "etag": hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()}
    commit = hashlib.sha1("".join(f"{k}:{v['sha256']}" for k, v in sorted(files.items())).encode()).hexdigest()
    return commit, files


def resolve(repo, rev):
    revs = repo_dirs().get(repo)
    if not revs:
        return None, None
    for name, path in revs.items():
        commit, files = snapshot(path)
        if rev in (name, commit):
            return commit, files
    return None, None


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def note(self):
        with open(LOG, "a") as f:
            f.write(f"{self.command} {self.path} {self.headers.get('Range', '-')}\n")

    def send(self, code, body=b"", headers=None, ctype="application/json"):
        self.send_response(code)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def authorized(self):
        tok = FAULTS.get("require_token")
        return not tok or self.headers.get("Authorization") == f"Bearer {tok}"

    def do_POST(self):
        self.note()
        if self.path == "/_faults":
            n = int(self.headers.get("Content-Length", "0"))
            with LOCK:
                FAULTS.clear()
                FAULTS.update(json.loads(self.rfile.read(n) or b"{}"))
                DROPPED.clear()
            return self.send(200, b"{}")
        self.send(404, b'{"error":"not found"}')

    def do_HEAD(self):
        self.do_GET()

    def do_GET(self):
        self.note()
        p = self.path.split("?")[0]  # (query strings, e.g. tree's ?recursive=, are ignored)
        if p.startswith("/cdn/"):
            return self.cdn(p[5:])
        if not self.authorized():
            return self.send(401, b'{"error":"Invalid credentials"}')
        parts = p.strip("/").split("/")
        if len(parts) == 6 and parts[:2] == ["api", "models"] and parts[4] == "revision":
            commit, files = resolve(f"{parts[2]}/{parts[3]}", parts[5])
            if commit is None:
                return self.send(404, b'{"error":"Repository or revision not found"}')
            body = {"id": f"{parts[2]}/{parts[3]}", "sha": commit,
                    "siblings": [{"rfilename": k} for k in sorted(files)]}
            return self.send(200, json.dumps(body).encode())
        if len(parts) == 6 and parts[:2] == ["api", "models"] and parts[4] == "tree":
            # huggingface_hub's list_repo_tree (snapshot_download lists files this way)
            commit, files = resolve(f"{parts[2]}/{parts[3]}", parts[5])
            if commit is None:
                return self.send(404, b'{"error":"Repository or revision not found"}')
            body = [{"type": "file", "path": k, "size": len(v["data"]), "oid": v["etag"],
                     **({"lfs": {"oid": v["sha256"], "size": len(v["data"]), "pointerSize": 134}} if v["lfs"] else {})}
                    for k, v in sorted(files.items())]
            return self.send(200, json.dumps(body).encode())
        if len(parts) >= 5 and parts[2] == "resolve":
            if FAULTS.get("redirect_loop"):
                return self.send(302, b"", {"Location": self.path})
            commit, files = resolve(f"{parts[0]}/{parts[1]}", parts[3])
            name = "/".join(parts[4:])
            if commit is None or name not in files:
                return self.send(404, b'{"error":"Entry not found"}', {"X-Error-Code": "EntryNotFound"})
            f = files[name]
            if f["lfs"]:
                with LOCK:
                    BLOBS[f["sha256"]] = (name, f["data"])
                # an absolute URL, as the real Hub's storage redirect is (clients follow only
                # relative redirects on HEAD)
                host = self.headers.get("Host", f"127.0.0.1:{self.server.server_address[1]}")
                return self.send(302, b"", {"Location": f"http://{host}/cdn/{f['sha256']}", "X-Repo-Commit": commit,
                                            "X-Linked-Etag": f'"{f["sha256"]}"',
                                            "X-Linked-Size": str(len(f["data"])), "ETag": f'"{f["etag"]}"'})
            return self.send(200, f["data"], {"ETag": f'"{f["etag"]}"', "X-Repo-Commit": commit},
                             "application/octet-stream")
        self.send(404, b'{"error":"not found"}')

    def cdn(self, sha):
        with LOCK:
            entry = BLOBS.get(sha)
        if not entry:
            return self.send(404, b"")
        name, data = entry
        if FAULTS.get("wrong_hash") == name:
            data = bytes([data[0] ^ 1]) + data[1:]
        start = 0
        rng = self.headers.get("Range")
        if rng and rng.startswith("bytes=") and rng.endswith("-"):
            start = int(rng[6:-1])
            if start >= len(data):
                return self.send(416, b"", {"Content-Range": f"bytes */{len(data)}"})
        body = data[start:]
        self.send_response(206 if start else 200)
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command == "HEAD":
            return
        if FAULTS.get("slow"):
            time.sleep(30)
        with LOCK:
            drop = FAULTS.get("drop_once") == name and name not in DROPPED
            if drop:
                DROPPED.add(name)
        if drop:
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)


BLOBS = {}
srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
srv.daemon_threads = True
with open(PORT_FILE, "w") as f:
    f.write(str(srv.server_address[1]))
srv.serve_forever()
