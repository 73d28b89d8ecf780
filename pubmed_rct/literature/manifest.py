"""OUT/manifest.json: what the label job has done, written by the driver alone, atomically, as units finish.

It names the model (URI, registry version, a hash of every file its workers may run, and the backend), the
chunk size and --relabel, and per input: its size, its records and where each unit starts (the plan), each
unit's part and counts while the input is under way, then its parts and totals; the fault that ended it, if
any, and the PMIDs its DeleteCitations withdrew. A rerun skips what it lists; a part on disk that it does not
list is written again by its unit, so a job killed at any point and started again ends with every sentence
exactly once. Written at most every `every_s` seconds while units finish (a kill loses at most that much
recorded work, done again by the next run), and at the end.
"""
from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
from pathlib import Path

from ..io import OutputError, digest, write_json
from .inputs import is_s3, s3

NAME = "manifest.json"


class JobError(ValueError):
    """The job cannot start (an output folder of another model, no inputs, a damaged manifest); one line, exit 2."""


def model_identity(uri: str, local: Path, backend: str) -> dict:
    """The model as the manifest records it: the URI given, its registry version if any, the backend asked for,
    and a hash of every file in its folder (config, tokenizer, weights, ONNX files, inference.json): what the
    workers may run. Another ONNX file or decision is another model."""
    from ..tracking import registry
    files = sorted(p for p in local.rglob("*") if p.is_file() and p.name != "README.md")
    sha = digest([backend.encode(), *(x for p in files for x in (str(p.relative_to(local)).encode() + b"\0", p))])
    version = registry.version_of_uri(uri) if registry.is_uri(uri) else None
    return {"uri": uri, "version": version, "sha256": sha, "backend": backend}


def _read(out: str, options: dict | None) -> str | None:
    if is_s3(out):
        fs = s3(options)
        path = f"{out.rstrip('/')}/{NAME}"
        return fs.cat(path).decode("utf-8", errors="replace") if fs.exists(path) else None
    path = Path(out) / NAME
    return path.read_text(encoding="utf-8", errors="replace") if path.is_file() else None


def _valid(manifest) -> str | None:
    """What is wrong with a manifest's shape, or None."""
    if not isinstance(manifest, dict):
        return "not a JSON object"
    model = manifest.get("model")
    if not isinstance(model, dict) or not isinstance(model.get("sha256"), str):
        return "no model.sha256"
    if not isinstance(manifest.get("chunk"), int) or not isinstance(manifest.get("inputs"), dict):
        return "no chunk or inputs"
    for uri, entry in manifest["inputs"].items():
        if not isinstance(entry, dict) or not isinstance(entry.get("parts", []), list):
            return f"inputs[{uri!r}] is not an input's entry"
    return None


def open_manifest(out: str, model: dict, chunk: int, relabel: bool, options: dict | None = None) -> dict:
    """The output folder's manifest, new or resumed; a folder written by another model (or with another chunk
    size or --relabel) is refused, never mixed; a manifest this job did not write is named, never read on."""
    if not is_s3(out) and Path(out).exists() and not Path(out).is_dir():
        raise OutputError(f"--out {out} is a file; name a folder for the Parquet dataset")
    text = _read(out, options)
    if text is None:
        if not is_s3(out) and Path(out).is_dir() and any(p.name not in (".lock", ".spark") for p in
                                                         Path(out).iterdir()):
            raise JobError(f"--out {out} holds files but no {NAME}; name an empty or new folder")
        return {"model": model, "chunk": chunk, "relabel": relabel, "inputs": {}}
    where = f"{out.rstrip('/')}/{NAME}"
    try:
        manifest = json.loads(text)
    except ValueError as e:
        raise JobError(f"{where} cannot be read ({e}): damaged or cut short; move it away and give a new --out "
                       "(its parts are in sentences/ beside it)") from e
    if (why := _valid(manifest)) is not None:
        raise JobError(f"{where} is not a label job's manifest ({why}); give a new --out")
    if manifest["model"]["sha256"] != model["sha256"]:
        raise JobError(f"--out {out} holds labels by another model ({manifest['model'].get('uri')}, version "
                       f"{manifest['model'].get('version')}); give a new --out for {model['uri']}")
    if manifest["chunk"] != chunk or manifest.get("relabel") != relabel:
        raise JobError(f"--out {out} was written with --chunk {manifest['chunk']} and relabel "
                       f"{manifest.get('relabel')}; resume with the same, or give a new --out")
    return manifest


def totals(entry: dict) -> None:
    """An input's totals from its units (while under way), kept when the units are folded into `parts`."""
    units = entry.get("units", {})
    entry["parts"] = [units[k]["part"] for k in sorted(units, key=int)] if units else entry.get("parts", [])
    for key in ("abstracts", "sentences", "bad_records", "superseded", "no_abstract", "books"):
        entry[key] = sum(u.get(key, 0) for u in units.values()) if units else entry.get(key, 0)


class Writer:
    """Writes the manifest atomically (a local file renamed into place; one S3 PUT), at most every `every_s`."""

    def __init__(self, out: str, manifest: dict, options: dict | None = None, every_s: float = 2.0):
        self.out, self.manifest, self.options, self.every_s, self.last = out, manifest, options, every_s, 0.0

    def write(self, force: bool = False) -> None:
        if not force and time.monotonic() - self.last < self.every_s:
            return
        if is_s3(self.out):
            data = json.dumps(self.manifest, indent=1, sort_keys=True).encode()
            s3(self.options).pipe(f"{self.out.rstrip('/')}/{NAME}", data)
        else:
            write_json(Path(self.out) / NAME, self.manifest)
        self.last = time.monotonic()



@contextlib.contextmanager
def s3_lock(out: str, options: dict | None = None, stale_s: float = 120.0):
    """The lock of a job on an S3 output: OUT/.lock names the running job and is renewed every 30 s; a second
    job is refused while it is fresh, and takes it over once it is stale (its job was killed). S3 has no
    atomic create here, so two jobs started within the same second could both pass: start one at a time."""
    from ..lifetime import Busy
    fs, path = s3(options), f"{out.rstrip('/')}/.lock"
    if fs.exists(path):
        try:
            held = json.loads(fs.cat(path))
            age = time.time() - float(held["heartbeat"])
        except (ValueError, KeyError, TypeError):
            held, age = {"pid": "?", "host": "?"}, 0.0
        if age < stale_s:
            raise Busy(f"a label job on {out} is already running (pid {held['pid']} on {held['host']}, seen "
                       f"{age:.0f} s ago; {path}); wait for it to finish or stop it, then run again")
    me = {"host": socket.gethostname(), "pid": os.getpid(), "started": time.time(), "heartbeat": time.time()}
    stop = threading.Event()

    def renew() -> None:
        while not stop.wait(30):
            me["heartbeat"] = time.time()
            with contextlib.suppress(OSError):
                fs.pipe(path, json.dumps(me).encode())
    fs.pipe(path, json.dumps(me).encode())
    thread = threading.Thread(target=renew, daemon=True, name="s3-lock")
    thread.start()
    try:
        yield
    finally:
        stop.set()
        with contextlib.suppress(OSError):
            fs.rm(path)
