"""The executor's side of the label job: read a unit (an input's records [start, stop)), label it with the
worker's model, write its part; return only the part's name, its counts and each bad record's line.

Plain Python, so that it runs and is tested without Spark (benchmarks/worker_loop.py times `label_records`,
the worker loop, alone). The model is loaded once per Python worker and kept (Spark reuses its Python workers,
`spark.python.worker.reuse`); on a GPU machine each worker takes a GPU of its own for its whole life.
"""
from __future__ import annotations

import errno
import fcntl
import os
import tempfile
import time
from pathlib import Path

from ..text.sentences import InputError
from . import parts, reading
from .pubmed_xml import XMLError

_labelers: dict = {}
_gpu_lock = None


def split_record(record: dict) -> list[tuple[str | None, str | None, str]]:
    """(heading, category, sentence) of a record: XML sections keep their Label and NlmCategory; plain text
    has its headings recognised (predict.split_sections, NLM's list)."""
    from ..inference.predict import split_sections
    from ..text.sentences import check_text, segment
    if record.get("sections") is not None:
        out = []
        for heading, category, text in record["sections"]:
            out += [(heading, category, s) for s in segment(" ".join(check_text(text).split()))]
        if not out:
            raise InputError("the abstract is empty")
        return out
    return split_sections(record["text"])


def label_records(labeler, records: list[dict], relabel: bool = False, batch_size: int | None = None) -> list[dict]:
    """The worker loop: one row per sentence of each record, or one row with `error` for a record that cannot
    be labelled (empty, too long, not valid Unicode, or flagged bad when read)."""
    rows, good, split = [], [], []
    for record in records:
        try:
            if record.get("error"):
                raise InputError(record["error"])
            split.append(split_record(record))
            good.append(record)
        except InputError as e:
            rows.append({"id": record["id"], "position": record["position"], "where": record["where"],
                         "error": str(e)})
    for record, sentences in zip(good, labeler.label_sections(split, batch_size, relabel) if split else []):
        for i, s in enumerate(sentences):
            rows.append({"id": record["id"], "position": record["position"], "sentence_index": i,
                         "text": s["sentence"], "label": s["label"], "probability": s["probability"],
                         "heading": s["heading"], "heading_category": s["heading_category"], "source": s["source"],
                         "where": record["where"], "error": None})
    return sorted(rows, key=lambda r: (r["position"], r.get("sentence_index") or 0))


def labeler(model_dir: str, backend: str, threads: int):
    """This Python worker's model, loaded on first use and kept; a GPU of its own where there are GPUs."""
    if model_dir not in _labelers:
        import torch
        from ..inference.predict import Labeler
        from .spark import resolve_model
        torch.set_num_threads(threads)
        if torch.cuda.is_available():
            torch.cuda.set_device(_claim_gpu(torch.cuda.device_count()))
        _labelers[model_dir] = Labeler.load(resolve_model(model_dir), backend)
    return _labelers[model_dir]


def _claim_gpu(count: int) -> int:
    """The first GPU no other worker on this machine holds (a lock held for this worker's life): one Python
    worker per GPU, whatever order Spark starts them in."""
    global _gpu_lock
    for index in range(count):
        f = open(Path(tempfile.gettempdir()) / f"pubmed-rct-gpu-{index}.lock", "a")
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.close()
            continue
        _gpu_lock = f
        return index
    return os.getpid() % count  # more workers than GPUs (--workers): they share


def _versions(records: list[reading.Record]) -> tuple[list[reading.Record], int]:
    """NLM's rule inside one unit: a later record of a PMID supersedes an earlier one (a DeleteCitation, or a
    citation without an abstract, too). Returns the records left and how many were superseded."""
    latest: dict[str, int] = {}
    for i, r in enumerate(records):
        for pmid in (r.deleted or ([r.id] if r.id else [])):
            latest[pmid] = i
    kept = [r for i, r in enumerate(records) if r.deleted is not None or not r.id or latest[r.id] == i]
    return kept, len(records) - len(kept)


def label_unit(unit: dict, settings: dict) -> dict:
    """Label one unit and write its part; the result is small: the part, counts, bad records' lines, the
    PMIDs of its DeleteCitations, and the fault that ended the input inside this unit, if any."""
    started = time.monotonic()
    uri, start, stop = unit["input"], unit["start"], unit["stop"]
    records, fault = [], None
    try:
        for record in reading.read(uri, start, stop, unit.get("plan"), settings["chunk"], settings["options"]):
            records.append(record)
    except (XMLError, reading.SourceError) as e:  # the records before the fault are labelled all the same
        fault = str(e)
    read, superseded = len(records), 0
    if reading.kind_of(uri) == "xml":
        records, superseded = _versions(records)
    todo = [{"id": str(r.id), "position": r.position, "where": r.where, "text": r.text, "sections": r.sections,
             "error": r.error} for r in records if r.skipped is None and r.deleted is None]
    model = labeler(settings["model_dir"], settings["backend"], settings["threads"])
    rows = []
    for i in range(0, len(todo), settings["batch"]):
        rows += label_records(model, todo[i:i + settings["batch"]], settings["relabel"])
    good = [dict(r, input=uri) for r in rows if not r.get("error")]
    events = {"no_abstract": [str(r.id) for r in records if r.skipped and r.id],
              "deleted": sorted({p for r in records if r.deleted for p in r.deleted})}
    part = parts.table(good, settings["model"], {"unit": unit["index"], "start": start, "stop": stop,
                                                 "events": events})
    try:
        parts.write(settings["out"], unit["part"], part, settings["options"])
    except OSError as e:
        if e.errno in (errno.ENOSPC, errno.EDQUOT):
            raise OSError(e.errno, f"no space left on the device under {settings['out']}") from e
        raise
    return {"index": unit["index"], "input": uri, "part": unit["part"], "start": start, "stop": stop,
            "records": read, "abstracts": len({r["position"] for r in good}),
            "sentences": len(good), "superseded": superseded,
            "bad": [f"{r['where']}: {r['error']}" for r in rows if r.get("error")],
            "skipped": {why: sum(1 for r in records if r.skipped == why) for why in ("no_abstract", "book")},
            "deleted": events["deleted"], "fault": fault, "seconds": round(time.monotonic() - started, 3),
            "worker": os.getpid()}

