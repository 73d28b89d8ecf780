"""The label job: a literature in (PubMed XML, JSON Lines, Parquet; local or S3), one Parquet row per sentence
out, resumable, with the authors' own labels where their headings give them and an agreement report.

Output folder:
  sentences/part-<input>-<chunk>.parquet   one per `chunk` records of an input, each written atomically: the
                                 Parquet dataset (`pandas.read_parquet("OUT/sentences")`)
  manifest.json                  the model, the chunk size, each input's parts and counts (written atomically
                                 after each part); a rerun skips what it lists, so a run killed at any point and
                                 started again ends with every sentence exactly once
  agreement.json                 with --relabel: model against the authors' NlmCategory
"""
from __future__ import annotations

import hashlib
import re
import sys
import time
from collections import Counter
from pathlib import Path

from . import pubmed_xml, sources
from .io import OutputError, read_json, write_json

COLUMNS = ["id", "sentence_index", "text", "label", "probability", "heading", "heading_category", "source",
           "input", "model", "model_version"]


class JobError(ValueError):
    """The job cannot start (an output folder of another model, no inputs); one line, exit 2."""


def model_identity(uri: str, local: Path) -> dict:
    """The model as the manifest records it: the URI given, its registry version if any, and a hash of its
    config and weights (what decides whether two runs used the same model)."""
    h = hashlib.sha256()
    for name in sorted(p.name for p in local.iterdir() if p.suffix in (".json", ".safetensors", ".bin")):
        with open(local / name, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    version = None
    if uri.startswith("models:/"):
        from . import registry
        ref = uri[len("models:/"):]
        name, sep, alias = ref.partition("@")
        version = registry.version_of(name, alias if sep else (ref.partition("/")[2] or None)).version
    elif uri.startswith("runs:/"):
        version = uri
    return {"uri": uri, "version": str(version) if version else None, "sha256": h.hexdigest()}


def part_name(uri: str, chunk: int) -> str:
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(uri.rstrip("/")).name)[:80]
    return f"part-{stem}-{hashlib.sha1(uri.encode()).hexdigest()[:8]}-{chunk:05d}.parquet"


def open_manifest(out: Path, model: dict, chunk: int, relabel: bool) -> dict:
    """The output folder's manifest, new or resumed; a folder written by another model (or with another chunk
    size or --relabel) is refused, never mixed."""
    path = out / "manifest.json"
    if out.exists() and not out.is_dir():
        raise OutputError(f"--out {out} is a file; name a folder for the Parquet dataset")
    if not path.is_file():
        if out.is_dir() and any(out.iterdir()):
            raise JobError(f"--out {out} holds files but no manifest.json; name an empty or new folder")
        return {"model": model, "chunk": chunk, "relabel": relabel, "inputs": {}}
    manifest = read_json(path)
    if manifest["model"]["sha256"] != model["sha256"]:
        raise JobError(f"--out {out} holds labels by another model ({manifest['model']['uri']}, version "
                       f"{manifest['model']['version']}); give a new --out for {model['uri']}")
    if manifest["chunk"] != chunk or manifest.get("relabel") != relabel:
        raise JobError(f"--out {out} was written with --chunk {manifest['chunk']} and relabel "
                       f"{manifest.get('relabel')}; resume with the same, or give a new --out")
    return manifest


def _write_part(path: Path, rows: list[dict], model: dict) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq
    from .io import atomic_path
    table = pa.table({
        "id": pa.array([r["id"] for r in rows], pa.string()),
        "sentence_index": pa.array([int(r["sentence_index"]) for r in rows], pa.int32()),
        "text": pa.array([r["text"] for r in rows], pa.string()),
        "label": pa.array([r["label"] for r in rows], pa.string()),
        "probability": pa.array([float(r["probability"]) for r in rows], pa.float32()),
        "heading": pa.array([r["heading"] for r in rows], pa.string()),
        "heading_category": pa.array([r["heading_category"] for r in rows], pa.string()),
        "source": pa.array([r["source"] for r in rows], pa.string()),
        "input": pa.array([r["input"] for r in rows], pa.string()),
        "model": pa.array([model["uri"]] * len(rows), pa.string()),
        "model_version": pa.array([model["version"]] * len(rows), pa.string()),
    })
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)


def kind(error: str) -> str:
    """A bad record's kind, for the summary."""
    for word, name in (("not UTF-8", "not_utf8"), ("not JSON", "not_json"), ("not valid Unicode", "not_unicode"),
                       ("limit", "too_long"), ("empty", "empty"), ("binary", "binary"), ("expected", "bad_shape")):
        if word in error:
            return name
    return "other"


def run(inputs: list[str], out: Path, engine, model: dict, chunk: int = 1000, batch: int = 64,
        relabel: bool = False, progress: bool = True) -> int:
    """Label every input not yet done into `out`; returns the exit code (0, or 1 if any file or record was
    bad). `engine.label(records)` returns label_records' rows."""
    from tqdm.auto import tqdm
    manifest = open_manifest(out, model, chunk, relabel)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "manifest.json", manifest)
    totals: Counter = Counter()
    bad_records: Counter = Counter()
    bad_files: Counter = Counter()
    started, first_output = time.monotonic(), None
    bar = tqdm(desc="label", unit="abstract", file=sys.stderr, disable=not progress, dynamic_ncols=True)
    for uri in inputs:
        entry = manifest["inputs"].setdefault(uri, {"parts": [], "done": False, "abstracts": 0, "sentences": 0,
                                                     "bad_records": 0})
        if entry["done"]:
            totals["skipped_inputs"] += 1
            continue
        counts = pubmed_xml.Counts()
        skip = len(entry["parts"]) * chunk  # records already in parts of an earlier run
        pending: list[dict] = []
        position = 0
        try:
            for record in sources.records(uri, counts):
                position += 1
                if position <= skip:
                    continue
                pending.append({"id": str(record.id), "where": record.where, "text": record.text,
                                "sections": record.sections, "error": record.error, "position": position})
                if len(pending) == chunk:
                    flushed = _flush(out, uri, entry, pending, engine, model, batch, bar, bad_records, manifest,
                                     started)
                    first_output, pending = first_output or flushed, []
            if pending:
                flushed = _flush(out, uri, entry, pending, engine, model, batch, bar, bad_records, manifest, started)
                first_output = first_output or flushed
        except (sources.SourceError, pubmed_xml.XMLError) as e:
            print(f"error: {e}", file=sys.stderr)
            bad_files["unreadable" if isinstance(e, sources.SourceError) else "bad_xml"] += 1
            write_json(out / "manifest.json", manifest)
            continue
        entry.update(done=True, deleted=counts.deleted, no_abstract=counts.no_abstract, books=counts.books)
        totals["deleted"] += counts.deleted
        totals["no_abstract"] += counts.no_abstract
        write_json(out / "manifest.json", manifest)
    bar.close()
    abstracts = sum(e["abstracts"] for e in manifest["inputs"].values())
    sentences = sum(e["sentences"] for e in manifest["inputs"].values())
    elapsed = time.monotonic() - started
    summary = (f"label: {abstracts:,} abstracts, {sentences:,} sentences in {out} "
               f"({totals['skipped_inputs']} inputs already done; deleted citations {totals['deleted']}, without "
               f"abstract {totals['no_abstract']}; bad records {sum(bad_records.values())}"
               f"{' ' + dict(bad_records).__repr__() if bad_records else ''}; bad files {sum(bad_files.values())}"
               f"{' ' + dict(bad_files).__repr__() if bad_files else ''}; {elapsed:.1f} s"
               f"{f', first output after {first_output:.1f} s' if first_output else ''})")
    if relabel:
        summary += "; " + agreement(out)
    print(summary, file=sys.stderr)
    return 1 if bad_records or bad_files else 0


def _flush(out: Path, uri: str, entry: dict, pending: list[dict], engine, model: dict, batch: int, bar,
           bad_records: Counter, manifest: dict, started: float) -> float:
    """Label one chunk (in engine calls of `batch` records), write its part, then the manifest; returns the
    seconds since the job started."""
    rows = []
    for start in range(0, len(pending), batch):
        rows += engine.label(pending[start:start + batch])
        bar.update(len(pending[start:start + batch]))
    good = [dict(r, input=uri) for r in rows if not r.get("error")]
    for r in rows:
        if r.get("error"):
            print(f"error: {r['where']}: {r['error']}", file=sys.stderr)
            bad_records[kind(r["error"])] += 1
    name = f"sentences/{part_name(uri, len(entry['parts']))}"
    _write_part(out / name, good, model)
    entry["parts"].append(name)
    entry["abstracts"] += len({r["position"] for r in good})
    entry["sentences"] += len(good)
    entry["bad_records"] += sum(1 for r in rows if r.get("error"))
    write_json(out / "manifest.json", manifest)
    return time.monotonic() - started


def agreement(out: Path) -> str:
    """agreement.json from the parts the manifest lists: the model's labels against the authors' categories
    (NlmCategory) on every sentence that has one; returns the one-line summary."""
    import pyarrow.parquet as pq
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score
    manifest = read_json(out / "manifest.json")
    gold, pred = [], []
    for entry in manifest["inputs"].values():
        for name in entry["parts"]:
            t = pq.read_table(out / name, columns=["label", "heading_category"]).to_pydict()
            for label, category in zip(t["label"], t["heading_category"]):
                if category:
                    gold.append(category)
                    pred.append(label.upper())
    from .headings import CATEGORIES
    labels = [c for c in CATEGORIES if c in set(gold) | set(pred)]
    report = {"sentences": len(gold), "labels": labels,
              "accuracy": round(accuracy_score(gold, pred), 4) if gold else None,
              "macro_f1": round(f1_score(gold, pred, labels=labels, average="macro", zero_division=0), 4)
              if gold else None,
              "f1": dict(zip(labels, (round(float(x), 4) for x in f1_score(gold, pred, labels=labels, average=None,
                                                                             zero_division=0)))) if gold else {},
              "confusion": {"rows_authors_columns_model": labels,
                            "matrix": confusion_matrix(gold, pred, labels=labels).tolist() if gold else []},
              "model": manifest["model"]}
    write_json(out / "agreement.json", report)
    if not gold:
        return "agreement: no sentence under an author's category (structured abstracts) to compare"
    return (f"agreement with the authors on {len(gold):,} sentences: accuracy {report['accuracy']:.4f}, macro-F1 "
            f"{report['macro_f1']:.4f} ({out / 'agreement.json'})")
