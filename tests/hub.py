"""A local Hugging Face hub for the tests: the hub's HTTP API over folders, so that the real
`datasets.load_dataset("<owner>/<name>", revision=...)` and `AutoModel.from_pretrained("<owner>/<name>")` run
unchanged with only the network replaced (HF_ENDPOINT points here). Each repository is served at one commit:

- HEAD/GET [/datasets]/<repo>/resolve/<revision>/<path>   the file, with X-Repo-Commit and ETag
- GET /api/{datasets,models}/<repo>[/revision/<revision>]  repository info (sha, siblings)
- GET /api/{datasets,models}/<repo>/tree/<revision>[/<path>]  a folder's files
- POST /api/{datasets,models}/<repo>/paths-info/<revision>  info on given paths

Unknown repositories, revisions and files answer 404 with the hub's X-Error-Code (RepoNotFound,
RevisionNotFound, EntryNotFound), which huggingface_hub turns into its own exceptions. `main` resolves to
the commit, as a branch does.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterator
from urllib.parse import parse_qs, unquote, urlparse

# (kind, repo id) -> (folder, commit); kind is "datasets" or "models", as in the hub's URLs
Repos = dict[tuple[str, str], tuple[Path, str]]


def _files(folder: Path) -> dict[str, Path]:
    return {p.relative_to(folder).as_posix(): p for p in sorted(folder.rglob("*")) if p.is_file()}


def _entry(files: dict[str, Path], path: str) -> dict:
    data = files[path].read_bytes()
    return {"type": "file", "path": path, "size": len(data), "oid": hashlib.sha1(data).hexdigest()}


def _handler(repos: Repos, log: list[str]):
    served = {key: (_files(folder), sha) for key, (folder, sha) in repos.items()}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:
            pass

        def _send(self, status: int, body: bytes = b"", headers: dict | None = None, head: bool = False) -> None:
            self.send_response(status)
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if not head:
                self.wfile.write(body)

        def _json(self, data) -> None:
            self._send(200, json.dumps(data).encode(), {"Content-Type": "application/json"})

        def _error(self, code: str, message: str, head: bool = False) -> None:
            self._send(404, json.dumps({"error": message}).encode(),
                       {"Content-Type": "application/json", "X-Error-Code": code, "X-Error-Message": message}, head)

        def _repo(self, kind: str, rest: str):
            """(files, sha, what follows the repo id) for the repo `rest` starts with, or None."""
            parts = rest.split("/")
            key = (kind, "/".join(parts[:2]))
            return (*served[key], "/".join(parts[2:])) if key in served else None

        def _route(self, head: bool = False) -> None:
            url = urlparse(self.path)
            path = unquote(url.path)
            log.append(f"{self.command} {path}")
            if path.startswith("/api/"):
                kind, _, rest = path[5:].partition("/")
                found = self._repo(kind, rest)
                if found is None:
                    return self._error("RepoNotFound", "Repository not found", head)
                return self._api(*found, url.query)
            kind, rest = ("datasets", path[10:]) if path.startswith("/datasets/") else ("models", path[1:])
            found = self._repo(kind, rest)
            if found is None:
                return self._error("RepoNotFound", "Repository not found", head)
            files, sha, tail = found
            verb, _, tail = tail.partition("/")
            revision, _, name = tail.partition("/")
            if verb != "resolve":
                return self._error("EntryNotFound", f"unsupported endpoint {path}", head)
            if revision not in (sha, "main"):
                return self._error("RevisionNotFound", f"Invalid rev id: {revision}", head)
            if name not in files:
                return self._error("EntryNotFound", f"{name} does not exist on \"{revision}\"", head)
            data = files[name].read_bytes()
            headers = {"X-Repo-Commit": sha, "ETag": f'"{hashlib.sha256(data).hexdigest()}"',
                       "Accept-Ranges": "bytes", "Content-Type": "application/octet-stream"}
            status, rng = 200, self.headers.get("Range")
            if rng and rng.startswith("bytes="):
                start, _, end = rng[6:].partition("-")
                start, end = int(start or 0), int(end) if end else len(data) - 1
                headers["Content-Range"] = f"bytes {start}-{min(end, len(data) - 1)}/{len(data)}"
                data, status = data[start:end + 1], 206
            return self._send(status, data, headers, head)

        def _api(self, files: dict[str, Path], sha: str, tail: str, query: str) -> None:
            parts = tail.strip("/").split("/") if tail.strip("/") else []
            if not parts or parts[0] == "revision":
                if len(parts) > 1 and parts[1] not in (sha, "main"):
                    return self._error("RevisionNotFound", f"Invalid rev id: {parts[1]}")
                return self._json({"id": "", "sha": sha, "private": False, "gated": False, "disabled": False,
                                   "downloads": 0, "likes": 0, "tags": [], "cardData": {},
                                   "siblings": [{"rfilename": f} for f in files]})
            if parts[0] not in ("tree", "paths-info") or len(parts) < 2:
                return self._error("EntryNotFound", f"unsupported endpoint {tail}")
            if parts[1] not in (sha, "main"):
                return self._error("RevisionNotFound", f"Invalid rev id: {parts[1]}")
            if parts[0] == "paths-info":
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
                asked = parse_qs(body).get("paths", []) if "=" in body else json.loads(body or "{}").get("paths", [])
                return self._json([_entry(files, p) for p in asked if p in files])
            under = "/".join(parts[2:])
            if under and not any(f.startswith(under + "/") for f in files):
                return self._error("EntryNotFound", f"{under} does not exist")
            recursive = parse_qs(query).get("recursive", ["false"])[0].lower() == "true"
            out, dirs = [], set()
            for f in files:
                if under and not f.startswith(under + "/"):
                    continue
                rest = f[len(under) + 1:] if under else f
                if "/" in rest and not recursive:
                    dirs.add((under + "/" if under else "") + rest.split("/")[0])
                    continue
                out.append(_entry(files, f))
            out += [{"type": "directory", "path": d, "size": 0, "oid": hashlib.sha1(d.encode()).hexdigest()}
                    for d in sorted(dirs)]
            return self._json(out)

        def do_HEAD(self) -> None:
            self._route(head=True)

        def do_GET(self) -> None:
            self._route()

        def do_POST(self) -> None:
            self._route()

    return Handler


@contextlib.contextmanager
def hub_server(repos: Repos) -> Iterator[tuple[str, list[str]]]:
    """Serve `repos`; yields (endpoint URL for HF_ENDPOINT, the log of requests)."""
    log: list[str] = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(repos, log))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", log
    finally:
        server.shutdown()
        server.server_close()
