#!/usr/bin/env python3
"""fake_hub.py - a small stand-in for the Hugging Face Hub, for tests/cli/test_hub.sh and
tests/hub/interop.sh (huggingface_hub against it).

Serves the repositories under ROOT (ROOT/<org>/<name>/<files>) with the Hub's routes and the
headers the real Hub sends (what huggingface_hub's file_download.py and our src/hub read):
  GET  /api/models/<org>/<name>[/revision/<rev>]    {"id", "sha", "siblings": [{"rfilename"}]}
  GET  /api/models/<org>/<name>/tree/<rev>          [{"type", "path", "size", "oid", "lfs"?}]
  HEAD/GET /<org>/<name>/resolve/<rev>/<file>
        small files: 307 to the relative /api/resolve-cache/models/<org>/<name>/<commit>/<file>
          (as the Hub does today), which answers 200 + ETag (git blob sha1) + X-Repo-Commit +
          Content-Length + Accept-Ranges, with Range requests;
        large ones (LFS): 302 to http://<CDN host>:<port>/cdn/<sha256>?<signature> with
          X-Repo-Commit, X-Linked-Etag (sha256), X-Linked-Size, ETag
  GET  /cdn/<sha256>     the storage: the bytes, Range requests (206), its own ETag and none of the
        Hub's X- headers (as the real CDN). Its host name (FAKE_HUB_CDN_HOST, default "localhost")
        differs from the endpoint's (clients use http://127.0.0.1:<port>): huggingface_hub >= 1.30
        follows a HEAD redirect that stays on the endpoint's host name, and must not follow this
        one; curl and huggingface_hub drop the Authorization header on the way there.
Errors carry X-Error-Code / X-Error-Message as the Hub's do: an unknown repository is 401
RepoNotFound, an unknown revision 404 RevisionNotFound, a missing file 404 EntryNotFound with
X-Repo-Commit (huggingface_hub records it under .no_exist/).
Revisions: ROOT/<org>/<name>/ is "main"; ROOT/<org>/<name>@<rev>/ is branch or tag <rev>; each
also answers to its commit (a sha1 of its files).
Faults, set with POST /_faults (JSON), cleared with {}:
  require_token: "T"   every route but /cdn answers 401 without "Authorization: Bearer T"
  drop_once: "file"    the first /cdn transfer of that file stops half-way (connection closed)
  wrong_hash: "file"   /cdn serves that file with one byte changed
  redirect_loop: true  resolve answers a redirect to itself
  slow: true           /cdn sends nothing for 30 s after the headers
Every request is appended to LOG as "METHOD PATH RANGE AUTH" (AUTH: "auth" when an Authorization
header came with it, else "-").
"""
import hashlib, json, os, sys, threading, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import quote

ROOT, PORT_FILE, LOG = sys.argv[1], sys.argv[2], sys.argv[3]
CDN_HOST = os.environ.get("FAKE_HUB_CDN_HOST", "localhost")
FAULTS = {}
DROPPED = set()
BLOBS = {}  # sha256 -> (file name, bytes): what /cdn serves, filled by resolve
LOCK = threading.Lock()


def repo_dirs():
    out = {}
    for org in sorted(os.listdir(ROOT)):
        for name in sorted(os.listdir(os.path.join(ROOT, org))):
            repo, _, rev = name.partition("@")
            out.setdefault(f"{org}/{repo}", {})[rev or "main"] = os.path.join(ROOT, org, name)
    return out


SNAPSHOTS = {}  # path -> (signature, (commit, files)): hashing every file on every request is slow


def snapshot(path):
    sig = []
    for dirpath, _, names in os.walk(path):
        for n in names:
            st = os.stat(os.path.join(dirpath, n))
            sig.append((os.path.join(dirpath, n), st.st_size, st.st_mtime_ns))
    sig = tuple(sorted(sig))
    with LOCK:
        hit = SNAPSHOTS.get(path)
    if hit and hit[0] == sig:
        return hit[1]
    out = hash_snapshot(path)
    with LOCK:
        SNAPSHOTS[path] = (sig, out)
    return out


def hash_snapshot(path):
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
    """(commit, files), or (None, "RepoNotFound" | "RevisionNotFound")."""
    revs = repo_dirs().get(repo)
    if not revs:
        return None, "RepoNotFound"
    for name, path in revs.items():
        commit, files = snapshot(path)
        if rev in (name, commit):
            return commit, files
    return None, "RevisionNotFound"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def note(self):
        auth = "auth" if self.headers.get("Authorization") else "-"
        with open(LOG, "a") as f:
            f.write(f"{self.command} {self.path} {self.headers.get('Range', '-')} {auth}\n")

    def send(self, code, body=b"", headers=None, ctype="application/json; charset=utf-8"):
        self.send_response(code)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def hub_error(self, code, error_code, message, headers=None):
        """An error as the Hub sends it: X-Error-Code / X-Error-Message and a JSON body."""
        h = {"X-Error-Code": error_code, "X-Error-Message": message, **(headers or {})}
        return self.send(code, json.dumps({"error": message}).encode(), h)

    def repo_error(self, why):
        if why == "RepoNotFound":  # the Hub answers 401 so that private repositories do not show
            return self.hub_error(401, "RepoNotFound", "Repository not found")
        return self.hub_error(404, "RevisionNotFound", "Invalid rev id")

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
            if self.headers.get("Authorization"):
                return self.hub_error(401, "Unauthorized", "Invalid credentials in Authorization header")
            return self.hub_error(401, "RepoNotFound", "Repository not found")
        parts = p.strip("/").split("/")
        if len(parts) == 4 and parts[:2] == ["api", "models"]:  # model info of main
            parts += ["revision", "main"]
        if len(parts) == 6 and parts[:2] == ["api", "models"] and parts[4] == "revision":
            commit, files = resolve(f"{parts[2]}/{parts[3]}", parts[5])
            if commit is None:
                return self.repo_error(files)
            body = {"_id": commit[:24], "id": f"{parts[2]}/{parts[3]}", "modelId": f"{parts[2]}/{parts[3]}",
                    "sha": commit, "private": False, "gated": False, "disabled": False,
                    "siblings": [{"rfilename": k} for k in sorted(files)]}
            return self.send(200, json.dumps(body).encode())
        if len(parts) == 6 and parts[:2] == ["api", "models"] and parts[4] == "tree":
            # huggingface_hub's list_repo_tree (snapshot_download lists files this way)
            commit, files = resolve(f"{parts[2]}/{parts[3]}", parts[5])
            if commit is None:
                return self.repo_error(files)
            body = [{"type": "file", "path": k, "size": len(v["data"]), "oid": v["etag"],
                     **({"lfs": {"oid": v["sha256"], "size": len(v["data"]), "pointerSize": 134}} if v["lfs"] else {})}
                    for k, v in sorted(files.items())]
            return self.send(200, json.dumps(body).encode())
        if len(parts) >= 7 and parts[:3] == ["api", "resolve-cache", "models"]:
            # where the Hub redirects a small file's resolve: pinned to the commit
            commit, files = resolve(f"{parts[3]}/{parts[4]}", parts[5])
            name = "/".join(parts[6:])
            if commit is None or name not in files or files[name]["lfs"]:
                return self.hub_error(404, "EntryNotFound", "Entry not found")
            f = files[name]
            return self.ranged(f["data"], {"ETag": f'"{f["etag"]}"', "X-Repo-Commit": commit},
                               "text/plain; charset=utf-8")
        if len(parts) >= 5 and parts[2] == "resolve":
            if FAULTS.get("redirect_loop"):
                return self.send(302, b"", {"Location": self.path})
            commit, files = resolve(f"{parts[0]}/{parts[1]}", parts[3])
            if commit is None:
                return self.repo_error(files)
            name = "/".join(parts[4:])
            if name not in files:
                return self.hub_error(404, "EntryNotFound", "Entry not found", {"X-Repo-Commit": commit})
            f = files[name]
            common = {"X-Repo-Commit": commit, "Accept-Ranges": "bytes", "Vary": "Origin, Accept"}
            if f["lfs"]:
                with LOCK:
                    BLOBS[f["sha256"]] = (name, f["data"])
                # the storage: another host, a signed URL (clients keep the query, send no token)
                port = self.server.server_address[1]
                loc = (f"http://{CDN_HOST}:{port}/cdn/{f['sha256']}?response-content-disposition="
                       f"{quote('inline; filename=' + os.path.basename(name))}&Expires=4102444800&Signature=fake")
                return self.send(302, f"Found. Redirecting to {loc}".encode(),
                                 {"Location": loc, **common, "X-Linked-Etag": f'"{f["sha256"]}"',
                                  "X-Linked-Size": str(len(f["data"])), "ETag": f'"{f["sha256"]}"'},
                                 "text/plain; charset=utf-8")
            loc = (f"/api/resolve-cache/models/{parts[0]}/{parts[1]}/{commit}/{quote(name)}?"
                   f"{quote('/' + '/'.join(parts[:4]) + '/' + name, safe='')}=&etag={quote(chr(34) + f['etag'] + chr(34))}")
            return self.send(307, f"Temporary Redirect. Redirecting to {loc}".encode(), {"Location": loc, **common},
                             "text/plain; charset=utf-8")
        self.send(404, b'{"error":"not found"}')

    def parse_range(self, size):
        """(start, end) of "bytes=a-" / "bytes=a-b", None for no Range, or "bad" (416)."""
        rng = self.headers.get("Range")
        if not rng or not rng.startswith("bytes="):
            return None
        a, _, b = rng[6:].partition("-")
        try:
            start, end = int(a), (int(b) if b else size - 1)
        except ValueError:
            return None
        if start >= size or end < start:
            return "bad"
        return start, min(end, size - 1)

    def ranged(self, data, headers, ctype):
        """200 with the bytes, or 206 for a Range request, or 416 past the end."""
        r = self.parse_range(len(data))
        if r == "bad":
            return self.send(416, b"", {**headers, "Content-Range": f"bytes */{len(data)}"})
        if r is None:
            return self.send(200, data, {**headers, "Accept-Ranges": "bytes"}, ctype)
        return self.send(206, data[r[0]:r[1] + 1], {**headers, "Accept-Ranges": "bytes",
                                                   "Content-Range": f"bytes {r[0]}-{r[1]}/{len(data)}"}, ctype)

    def cdn(self, sha):
        with LOCK:
            entry = BLOBS.get(sha)
        if not entry:
            return self.send(404, b"", {}, "application/xml")
        name, data = entry
        if FAULTS.get("wrong_hash") == name:
            data = bytes([data[0] ^ 1]) + data[1:]
        # the storage's own headers: an ETag that is not the sha256, no X-Repo-Commit / X-Linked-*
        h = {"ETag": f'"{hashlib.md5(data).hexdigest()}"', "Accept-Ranges": "bytes",
             "Content-Disposition": f'inline; filename="{os.path.basename(name)}"',
             "Last-Modified": "Thu, 01 Jan 2026 00:00:00 GMT"}
        r = self.parse_range(len(data))
        if r == "bad":
            return self.send(416, b"", {"Content-Range": f"bytes */{len(data)}"}, "application/xml")
        start, end = r if r else (0, len(data) - 1)
        body = data[start:end + 1]
        self.send_response(206 if r else 200)
        for k, v in h.items():
            self.send_header(k, v)
        if r:
            self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
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


srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
srv.daemon_threads = True
with open(PORT_FILE + ".tmp", "w") as f:
    f.write(str(srv.server_address[1]))
os.replace(PORT_FILE + ".tmp", PORT_FILE)  # readers never see an empty file
srv.serve_forever()
