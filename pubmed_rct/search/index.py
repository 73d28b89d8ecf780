"""`python -m pubmed_rct index LABELLED --index DIR`: the label job's output made a full-text index, one document
per sentence, built incrementally and atomically.

DIR/tantivy/ is the index; DIR/index.json names its source folder and model and lists the parts in it, each
with the size and modification time (or S3 ETag) it had when indexed. A rerun indexes only what changed since:
new parts are added, parts the label job rewrote (a later version superseding an earlier) are replaced, parts
gone are removed; every part's documents are deleted before they are added, so none is ever in twice. A
tantivy commit is atomic and index.json is written after it, so a build killed at any point leaves the previous
index whole and searchable, and the next build finishes the work.
"""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from ..io import write_json
from ..literature import inputs, parts
from ..literature.manifest import JobError

REGISTRY = "index.json"
# What a search shows of a sentence (stored), what it filters on (indexed, lower case), what deletes a part.
FIELDS = ("id", "sentence_index", "text", "label", "probability", "source", "heading", "model_version")


def schema():
    import tantivy
    b = tantivy.SchemaBuilder()
    b.add_text_field("text", stored=True, tokenizer_name="en_stem")  # lower case, English stems: trial = trials
    for name in ("id", "label", "source", "heading", "model_version"):
        b.add_text_field(name, stored=True, tokenizer_name="raw")
    b.add_text_field("role", tokenizer_name="raw")  # the label in lower case, for --role
    b.add_text_field("part", tokenizer_name="raw")  # which part a document came from: how a part is replaced
    b.add_integer_field("sentence_index", stored=True, fast=True)
    b.add_float_field("probability", stored=True, indexed=True, fast=True)
    return b.build()


def open_index(folder: Path, create: bool = False):
    import tantivy
    path = Path(folder) / "tantivy"
    if not (path / "meta.json").is_file():
        if not create:
            raise FileNotFoundError(f"--index {folder}: no index here; build one with `python -m pubmed_rct index "
                                    f"LABELLED --index {folder}`")
        path.mkdir(parents=True, exist_ok=True)
    return tantivy.Index(schema(), path=str(path))


def registry(folder: Path) -> dict | None:
    path = Path(folder) / REGISTRY
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError as e:
        raise JobError(f"{path} cannot be read ({e}); the index's record of its parts is damaged: build into a "
                       "new --index") from e


def _manifest(labelled: str, options: dict | None) -> dict:
    from ..literature.manifest import _read
    text = _read(labelled, options)
    if text is None:
        raise FileNotFoundError(f"{labelled}: no manifest.json: not the output of `python -m pubmed_rct label`")
    try:
        manifest = json.loads(text)
        manifest["model"]["sha256"], manifest["inputs"].items()
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise JobError(f"{labelled}/manifest.json is not a label job's manifest ({type(e).__name__}); give the "
                       "folder `label --out` wrote") from e
    return manifest


def fingerprint(labelled: str, name: str, options: dict | None) -> list:
    """What changes when a part is rewritten: its size and modification time (S3: size and ETag)."""
    if inputs.is_s3(labelled):
        info = inputs.s3(options).info(parts.join(labelled, name))
        return [int(info["size"]), str(info.get("ETag") or info.get("etag") or "")]
    stat = (Path(labelled) / name).stat()
    return [stat.st_size, stat.st_mtime_ns]


def build(labelled: str, folder: Path, options: dict | None = None, progress: bool = True) -> str:
    """Bring the index in `folder` up to date with the label job's output `labelled`; the summary line."""
    from tqdm.auto import tqdm
    started = time.monotonic()
    manifest = _manifest(labelled, options)
    known = registry(folder) or {"source": labelled, "model": manifest["model"], "parts": {}, "sentences": 0}
    if known["source"] != labelled:
        raise JobError(f"--index {folder} indexes {known['source']}; give a new --index for {labelled}")
    if known["model"]["sha256"] != manifest["model"]["sha256"]:
        raise JobError(f"--index {folder} holds labels by another model ({known['model'].get('uri')}, version "
                       f"{known['model'].get('version')}); give a new --index for {labelled}'s "
                       f"({manifest['model'].get('uri')})")
    listed = [name for entry in manifest["inputs"].values() for name in entry["parts"]]
    now = {name: fingerprint(labelled, name, options) for name in listed}
    todo = [name for name in listed if known["parts"].get(name) != now[name]]
    gone = [name for name in known["parts"] if name not in now]
    index = open_index(folder, create=True)
    writer = index.writer(heap_size=256_000_000, num_threads=max(1, min(4, len(os.sched_getaffinity(0)))))
    bar = tqdm(total=len(todo), desc="index", unit="part", file=sys.stderr, disable=not progress, dynamic_ncols=True)
    added, labels = 0, set(known.get("labels", []))
    for name in gone + todo:  # a part's documents go before it comes in again: none is ever in twice
        writer.delete_documents_by_term("part", name)
    for name in todo:
        added += _add(writer, parts.read(labelled, name, list(FIELDS), options), name, labels)
        bar.update(1)
        bar.set_postfix(sentences=f"{added:,}")
    bar.close()
    writer.commit()
    writer.wait_merging_threads()
    index.reload()
    total = index.searcher().num_docs
    for name in gone:
        known["parts"].pop(name)
    known["parts"].update({name: now[name] for name in todo})
    known.update(sentences=total, model=manifest["model"], labels=sorted(labels))
    write_json(Path(folder) / REGISTRY, known)  # after the commit: a kill before it redoes these parts, no more
    return (f"index: {total:,} sentences from {len(now):,} parts of {labelled} in {folder} ({len(todo):,} parts "
            f"indexed now, {added:,} sentences; {len(listed) - len(todo):,} already in; {len(gone):,} gone; model "
            f"{manifest['model'].get('uri')} version {manifest['model'].get('version')}; "
            f"{time.monotonic() - started:.1f} s)")


def _add(writer, table, name: str, labels: set[str]) -> int:
    import tantivy
    columns = table.to_pydict()
    labels.update(label for label in columns["label"] if label)
    for i in range(table.num_rows):
        label = columns["label"][i] or ""
        doc = tantivy.Document(text=columns["text"][i], id=str(columns["id"][i]), label=label, role=label.lower(),
                               source=columns["source"][i] or "", heading=columns["heading"][i] or "",
                               model_version=columns["model_version"][i] or "", part=name,
                               sentence_index=int(columns["sentence_index"][i]),
                               probability=float(columns["probability"][i]))
        writer.add_document(doc)
    return table.num_rows

