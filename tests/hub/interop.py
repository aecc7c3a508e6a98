#!/usr/bin/env python3
"""interop.py - the huggingface_hub side of tests/hub/interop.sh (run it through that script).

  interop.py version
      prints huggingface_hub's version and where it was imported from.
  interop.py read CACHE ENDPOINT HUB_ROOT REPO...
      huggingface_hub, with local_files_only=True, reads the cache that tkr-embed wrote: for each
      REPO, snapshot_download (by branch and by commit) returns our snapshot of the commit the hub
      names, hf_hub_download and try_to_load_from_cache resolve every file we wrote to bytes equal
      to the hub's, and scan_cache_dir finds the layout sound (refs, blobs named by ETag, no
      warnings, no .incomplete left).
  interop.py headers ENDPOINT HUB_ROOT REPO LFS_FILE SMALL_FILE
      the fake hub's metadata as huggingface_hub reads it (get_hf_file_metadata), and its storage
      redirect on another host name, as the real Hub's is.
  interop.py download CACHE ENDPOINT REPO...
      huggingface_hub downloads each REPO whole (snapshot_download) from the fake hub into CACHE,
      and asks for one file the repository lacks (so that it writes .no_exist/ as it does).
Each check prints "ok   <what>" or "FAIL <what>: <why>"; the exit status is the number of FAILs.
"""
import hashlib
import os
import sys

FAILS = 0


def check(what, cond, why=""):
    global FAILS
    if cond:
        print(f"ok   {what}", flush=True)
    else:
        FAILS += 1
        print(f"FAIL {what}{': ' + why if why else ''}", flush=True)
    return cond


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def git_blob_sha1(path):
    data = open(path, "rb").read()
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def cmd_version():
    import huggingface_hub

    print(f"huggingface_hub {huggingface_hub.__version__} from {os.path.dirname(huggingface_hub.__file__)}")
    return 0


def cmd_read(cache, endpoint, hub_root, repos):
    from huggingface_hub import HfApi, hf_hub_download, scan_cache_dir, snapshot_download, try_to_load_from_cache

    for repo in repos:
        org, name = repo.split("/")
        folder = os.path.join(cache, f"models--{org}--{name}")
        commit = HfApi(endpoint=endpoint).model_info(repo).sha  # the reference: the hub's word
        ours = os.path.join(folder, "snapshots", commit)
        if not check(f"{repo}: tkr-embed's snapshot is the hub's commit {commit[:12]}", os.path.isdir(ours),
                     f"no {ours}"):
            continue
        files = sorted(os.path.relpath(os.path.join(d, f), ours) for d, _, fs in os.walk(ours) for f in fs)
        print(f"     {repo}: tkr-embed wrote {', '.join(files)}")
        for rev in ("main", commit):
            try:
                p = snapshot_download(repo, revision=rev, cache_dir=cache, local_files_only=True)
                check(f"{repo}: snapshot_download(revision={rev[:12]}, local_files_only=True) -> our snapshot",
                      os.path.realpath(p) == os.path.realpath(ours), p)
            except Exception as e:  # noqa: BLE001 (any failure is the finding)
                check(f"{repo}: snapshot_download(revision={rev[:12]}, local_files_only=True)", False, repr(e))
        good = 0
        for f in files:
            src = os.path.join(hub_root, org, name, f)
            try:
                paths = {hf_hub_download(repo, f, revision=rev, cache_dir=cache, local_files_only=True)
                         for rev in ("main", commit)}
                paths.add(try_to_load_from_cache(repo, f, cache_dir=cache))
            except Exception as e:  # noqa: BLE001
                check(f"{repo}: hf_hub_download({f}, local_files_only=True)", False, repr(e))
                continue
            p = paths.pop() if len(paths) == 1 else None
            ok = p is not None and os.path.realpath(p) == os.path.realpath(os.path.join(ours, f)) and \
                sha256(p) == sha256(src)
            good += check(f"{repo}: hf_hub_download / try_to_load_from_cache({f}) -> bytes equal to the hub's", ok,
                          f"paths {paths}, {p}")
        check(f"{repo}: huggingface_hub resolved all {len(files)} files tkr-embed wrote", good == len(files) > 0)

    info = scan_cache_dir(cache)
    check("scan_cache_dir: no warnings (the layout is sound)", not info.warnings,
          "; ".join(str(w) for w in info.warnings))
    check("scan_cache_dir: no .incomplete files left", not getattr(info, "incomplete_files", ()),
          str(getattr(info, "incomplete_files", "")))
    by_id = {r.repo_id: r for r in info.repos}
    for repo in repos:
        org, name = repo.split("/")
        r = by_id.get(repo)
        if not check(f"scan_cache_dir finds {repo}", r is not None):
            continue
        commit = HfApi(endpoint=endpoint).model_info(repo).sha
        revs = {rv.commit_hash: rv for rv in r.revisions}
        rv = revs.get(commit)
        check(f"{repo}: refs/main -> {commit[:12]} as scan_cache_dir reads it",
              rv is not None and "main" in rv.refs, f"revisions {[(k, v.refs) for k, v in revs.items()]}")
        if rv is None:
            continue
        bad = []
        for cf in rv.files:
            src = os.path.join(hub_root, org, name, cf.file_name)
            blob = os.path.basename(cf.blob_path)
            if blob not in (sha256(src), git_blob_sha1(src)):
                bad.append(f"{cf.file_name} -> blobs/{blob}")
            if os.path.isabs(os.readlink(cf.file_path)):
                bad.append(f"{cf.file_name}: absolute link")
        check(f"{repo}: every blob is named by its ETag (sha256 for LFS, git sha1 else), relative links", not bad,
              ", ".join(bad))
    return FAILS


def cmd_headers(endpoint, hub_root, repo, lfs_file, small_file):
    """The fake hub as huggingface_hub sees it: get_hf_file_metadata gives the commit, the ETag
    (sha256 of an LFS file, git sha1 of a small one) and the size; an LFS file's storage URL is on
    another host name than the endpoint (huggingface_hub >= 1.30 follows HEAD redirects within the
    endpoint's host name, and would otherwise read the metadata off the storage's answer, which
    carries none of it, as the real storage's does not)."""
    from urllib.parse import urlparse

    import httpx
    from huggingface_hub import HfApi, get_hf_file_metadata, hf_hub_url

    org, name = repo.split("/")
    commit = HfApi(endpoint=endpoint).model_info(repo).sha
    for f, lfs in ((lfs_file, True), (small_file, False)):
        src = os.path.join(hub_root, org, name, f)
        m = get_hf_file_metadata(hf_hub_url(repo, f, endpoint=endpoint))
        want = sha256(src) if lfs else git_blob_sha1(src)
        check(f"get_hf_file_metadata({repo}/{f}): commit, ETag ({'sha256' if lfs else 'git sha1'}) and size",
              m.commit_hash == commit and m.etag == want and m.size == os.path.getsize(src),
              f"{m.commit_hash} {m.etag} {m.size}")
        if lfs:
            host = urlparse(m.location).hostname
            check(f"{f}: the storage URL's host ({host}) is not the endpoint's ({urlparse(endpoint).hostname})",
                  host != urlparse(endpoint).hostname, m.location)
            r = httpx.head(m.location)
            check(f"{f}: the storage answers 200 without X-Repo-Commit / X-Linked-Etag, its ETag not the sha256",
                  r.status_code == 200 and "x-repo-commit" not in r.headers and "x-linked-etag" not in r.headers
                  and r.headers.get("etag", "").strip('"') != want, f"{r.status_code} {dict(r.headers)}")
    return FAILS


def cmd_download(cache, endpoint, repos):
    from huggingface_hub import hf_hub_download, snapshot_download
    from huggingface_hub.utils import EntryNotFoundError

    for repo in repos:
        try:
            p = snapshot_download(repo, cache_dir=cache, endpoint=endpoint)
            files = sorted(os.listdir(p))
            check(f"huggingface_hub snapshot_download({repo}) from the fake hub -> {p}", bool(files))
            print(f"     {repo}: huggingface_hub wrote {', '.join(files)}")
        except Exception as e:  # noqa: BLE001
            check(f"huggingface_hub snapshot_download({repo})", False, repr(e))
            continue
        try:
            hf_hub_download(repo, "no-such-file.json", cache_dir=cache, endpoint=endpoint)
            check(f"{repo}: a missing file is an EntryNotFoundError", False, "it downloaded something")
        except EntryNotFoundError:
            org, name = repo.split("/")
            nx = os.path.join(cache, f"models--{org}--{name}", ".no_exist", os.path.basename(p), "no-such-file.json")
            check(f"{repo}: a missing file -> EntryNotFoundError and .no_exist/<commit>/ (404 with X-Repo-Commit)",
                  os.path.exists(nx), f"no {nx}")
        except Exception as e:  # noqa: BLE001
            check(f"{repo}: a missing file is an EntryNotFoundError", False, repr(e))
    return FAILS


def main(argv):
    if len(argv) >= 1 and argv[0] == "version":
        return cmd_version()
    if len(argv) >= 5 and argv[0] == "read":
        return cmd_read(argv[1], argv[2], argv[3], argv[4:])
    if len(argv) == 6 and argv[0] == "headers":
        return cmd_headers(*argv[1:])
    if len(argv) >= 4 and argv[0] == "download":
        return cmd_download(argv[1], argv[2], argv[3:])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(min(main(sys.argv[1:]), 125))
