"""The label job's driver: it lists the inputs, plans units of work, hands them to Spark, and records each
finished part in the manifest. It never holds a record or a row: executors read, label and write.

A unit is a range of `chunk` records of one input (worker.label_unit). Each input is first scanned on an
executor (reading.scan: its records, its fault, where each unit starts); its units are planned as its scan
comes back, so labelling starts while later inputs are still being scanned. Output folder:

  sentences/part-<input>-<unit>.parquet   one per unit, its name fixed by the unit (parts.py)
  manifest.json                  the model, the chunk size, each input's units and counts (manifest.py)
  agreement.json                 with --relabel: the model against the authors' NlmCategory (agreement.py)
  .lock, .spark/                 the running job's lock, Spark's scratch space (emptied by the next job)
"""
from __future__ import annotations

import errno
import json
import shutil
import sys
import time
from collections import Counter, deque
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from pathlib import Path

from ..io import OutputError, write_json
from . import inputs, manifest as manifests, parts, reading, worker
from .manifest import JobError
from .spark import EngineError
from .supersede import supersede

UNIT = ("part", "start", "stop", "abstracts", "sentences", "bad_records", "superseded", "no_abstract", "books")


def kind(error: str) -> str:
    """A bad record's kind, for the summary."""
    for word, name in (("not UTF-8", "not_utf8"), ("not JSON", "not_json"), ("not valid Unicode", "not_unicode"),
                       ("limit", "too_long"), ("empty", "empty"), ("binary", "binary"), ("expected", "bad_shape")):
        if word in error:
            return name
    return "other"


def scan_task(argument: tuple) -> dict:
    """On an executor: scan one input (reading.scan), a file that cannot be read named in the result."""
    uri, chunk, options = argument
    try:
        return {"uri": uri, **reading.scan(uri, chunk, options), "size": inputs.size(uri, options)}
    except inputs.SourceError as e:
        return {"uri": uri, "error": str(e)}


def unit_task(argument: tuple) -> dict:
    """On an executor: label one unit (worker.label_unit)."""
    unit, settings = argument
    return worker.label_unit(unit, settings)


class Job:
    """One run of the label job on `out`: the manifest, the plan, the counts of this run."""

    def __init__(self, out: str, manifest: dict, settings: dict, progress: bool):
        from tqdm.auto import tqdm
        self.out, self.manifest, self.settings = out, manifest, settings
        self.writer = manifests.Writer(out, manifest, settings["options"])
        self.bad_records, self.bad_files, self.skipped_inputs, self.lost = Counter(), Counter(), 0, 0
        self.started, self.first_output = time.monotonic(), None
        self.bar = tqdm(desc="label", unit="abstract", file=sys.stderr, disable=not progress, dynamic_ncols=True,
                        total=0)

    def entry(self, uri: str) -> dict:
        inputs_ = self.manifest["inputs"]
        if uri not in inputs_:
            inputs_[uri] = {"order": max((e.get("order", 0) for e in inputs_.values()), default=-1) + 1,
                            "parts": [], "units": {}, "done": False}
        return inputs_[uri]

    def units_of(self, uri: str, plan: dict) -> list[dict]:
        """The units of an input still to do: each range of `chunk` records not already written by this plan."""
        entry = self.entry(uri)
        todo = []
        for index, (start, stop) in enumerate(ranges(entry, self.settings["chunk"])):
            done = entry["units"].get(str(index))
            if done and done[1:3] == [start, stop]:
                continue
            todo.append({"input": uri, "index": index, "start": start, "stop": stop, "plan": plan,
                         "part": parts.part_name(uri, index)})
        self.bar.total += sum(u["stop"] - u["start"] for u in todo)
        self.bar.refresh()
        return todo

    def scanned(self, result: dict) -> list[dict]:
        uri = result["uri"]
        if "error" in result:
            print(f"error: {result['error']}", file=sys.stderr)
            self.bad_files["unreadable"] += 1
            return []
        entry = self.entry(uri)
        if entry.get("size") not in (None, result["size"]) and entry["units"]:
            print(f"{uri} changed since it was labelled (size {entry['size']:,} → {result['size']:,}): labelling it "
                  "again", file=sys.stderr)
            for unit in entry["units"].values():
                parts.remove(self.out, unit[0], self.settings["options"])
            entry["units"] = {}
        entry.update(size=result["size"], records=result["records"], deletions=result.get("deletions", 0),
                     fault=result["fault"], lost=result["lost"])
        if result["fault"]:
            print(f"error: {result['fault']}; {result['records']:,} records before it are labelled, "
                  f"{result['lost']:,} after it lost", file=sys.stderr)
            self.bad_files["bad_xml"] += 1
            self.lost += result["lost"]
        plan = {k: result[k] for k in ("records", "offsets", "lines", "header")}
        entry["plan"] = plan
        return self.units_of(uri, plan)

    def labelled(self, result: dict) -> None:
        entry = self.entry(result["input"])
        entry["units"][str(result["index"])] = [result["part"], result["start"], result["stop"], result["abstracts"],
                                                result["sentences"], len(result["bad"]), result["superseded"],
                                                result["skipped"]["no_abstract"], result["skipped"]["book"]]
        entry["dropped"] = {k: v for k, v in entry.get("dropped", {}).items() if k != result["part"]}
        entry["deleted_pmids"] = sorted(set(entry.get("deleted_pmids", [])) | set(result["deleted"]))
        for line in result["bad"]:
            print(f"error: {line}", file=sys.stderr)
            self.bad_records[kind(line)] += 1
        if result["fault"] and not entry.get("fault"):  # the file changed after its scan
            print(f"error: {result['fault']}", file=sys.stderr)
            self.bad_files["bad_xml"] += 1
        self.first_output = self.first_output or time.monotonic() - self.started
        self.bar.update(result["stop"] - result["start"])
        self.refresh(result["input"])
        self.writer.write()

    def refresh(self, uri: str) -> None:
        """An input's parts and totals from its units, less what later versions superseded; done when every
        unit of a fault-free input is written."""
        entry = self.entry(uri)
        units = [entry["units"][k] for k in sorted(entry["units"], key=int)]
        entry["parts"] = [u[0] for u in units]
        for i, key in enumerate(UNIT[3:], 3):
            entry[key] = sum(u[i] for u in units)
        for rows, abstracts in entry.get("dropped", {}).values():
            entry["sentences"] -= rows
            entry["abstracts"] -= abstracts
            entry["superseded"] += abstracts
        entry["deleted"] = len(entry.get("deleted_pmids", []))
        entry["done"] = ("records" in entry and not entry.get("fault") and
                         [u[1:3] for u in units] == [list(r) for r in ranges(entry, self.settings["chunk"])])
        if entry["done"]:
            entry.pop("plan", None)


def ranges(entry: dict, chunk: int) -> list[tuple[int, int]]:
    """The units of a scanned input: ranges of `chunk` citations (or rows, or lines); a file of DeleteCitations
    alone is one unit."""
    records = entry["records"]
    if records == 0:
        return [(0, 1)] if entry.get("deletions") else []
    return [(start, min(start + chunk, records)) for start in range(0, records, chunk)]


def run(inputs_: list[str], out: str, engine, model: dict, chunk: int = 200, batch: int = 64,
        relabel: bool = False, backend: str = "auto", options: dict | None = None, progress: bool = True) -> int:
    """Label every input not yet done into `out`; the exit code: 0, or 1 if any file or record was bad."""
    manifest = manifests.open_manifest(out, model, chunk, relabel, options)
    settings = {"chunk": chunk, "batch": batch, "relabel": relabel, "backend": backend, "options": options,
                "out": out, "model": model, "model_dir": engine.model_dir, "threads": engine.threads}
    job = Job(out, manifest, settings, progress)
    scans = deque()
    for uri in inputs_:
        entry = job.entry(uri)
        if entry["done"]:
            job.skipped_inputs += 1
        else:
            scans.append(uri)
    job.writer.write(force=True)
    try:
        schedule(job, engine, scans)
        if dropped := supersede(engine, out, manifest, options):
            by_part = {name: uri for uri, e in manifest["inputs"].items() for name in e["parts"]}
            for name, rows, abstracts in dropped:
                job.entry(by_part[name]).setdefault("dropped", {})[name] = [rows, abstracts]
        for uri in manifest["inputs"]:
            job.refresh(uri)
    finally:
        job.bar.close()
        job.writer.write(force=True)
    return summary(job, relabel)


def schedule(job: Job, engine, scans: deque) -> None:
    """Keep every task slot busy: a unit wherever one is ready, a scan where units are running short."""
    ready: deque = deque()
    running: dict = {}
    with ThreadPoolExecutor(max_workers=engine.workers) as pool:
        try:
            while scans or ready or running:
                while len(running) < engine.workers and (scans or ready):
                    units_running = sum(1 for what, _ in running.values() if what == "unit")
                    if scans and (not ready or len(ready) + units_running < 2 * engine.workers):
                        uri = scans.popleft()
                        running[pool.submit(engine.submit, scan_task, (uri, job.settings["chunk"],
                                                                       job.settings["options"]))] = ("scan", uri)
                    else:
                        unit = ready.popleft()
                        running[pool.submit(engine.submit, unit_task, (unit, job.settings))] = ("unit", unit)
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in finished:
                    what, item = running.pop(future)
                    try:
                        result = future.result()
                    except EngineError as e:
                        failed(job, what, item, str(e))
                        continue
                    if what == "scan":
                        ready.extend(job.scanned(result))
                    else:
                        job.labelled(result)
        except BaseException:
            engine.context.cancelAllJobs()  # Ctrl-C, a full disk, workers without the packages: stop them all
            raise


def failed(job: Job, what: str, item, why: str) -> None:
    """A task that failed after Spark's retries: the job stops where nothing can succeed (a full disk, workers
    without the packages), else the input is named, counted and left not done for the next run."""
    if "No space left" in why or "no space left" in why:
        said = f"no space left on the device under {job.out}"
        raise OSError(errno.ENOSPC, f"{said}{'' if said in why else f' ({why})'}; free some space and run the job "
                                    "again: it goes on from the last part written")
    if "lacks the module" in why:
        raise EngineError(why)
    where = item if what == "scan" else f"{item['input']} records {item['start']:,}-{item['stop'] - 1:,}"
    print(f"error: {where}: {why}", file=sys.stderr)
    job.bad_files["failed"] += 1


def summary(job: Job, relabel: bool) -> int:
    entries = job.manifest["inputs"].values()
    total = {key: sum(e.get(key, 0) for e in entries) for key in ("abstracts", "sentences", "deleted", "no_abstract",
                                                                   "superseded")}
    elapsed = time.monotonic() - job.started
    bad, files = job.bad_records, job.bad_files
    line = (f"label: {total['abstracts']:,} abstracts, {total['sentences']:,} sentences in {job.out} "
            f"({job.skipped_inputs} inputs already done; deleted citations {total['deleted']}, without abstract "
            f"{total['no_abstract']}, superseded by a later version {total['superseded']}; bad records "
            f"{sum(bad.values())}{' ' + repr(dict(bad)) if bad else ''}; bad files {sum(files.values())}"
            f"{' ' + repr(dict(files)) if files else ''}"
            f"{f'; citations lost to faults {job.lost}' if job.lost else ''}; {elapsed:.1f} s"
            f"{f', first output after {job.first_output:.1f} s' if job.first_output else ''})")
    if relabel:
        from .agreement import agreement
        line += "; " + agreement(job.out, job.manifest, lambda name, data: write(job, name, data),
                                 job.settings["options"])
    print(line, file=sys.stderr)
    return 1 if bad or files else 0


def write(job: Job, name: str, data: dict) -> str:
    """A small JSON file of the output, atomically; its path."""
    where = parts.join(job.out, name)
    if inputs.is_s3(job.out):
        inputs.s3(job.settings["options"]).pipe(where, json.dumps(data, indent=2).encode())
    else:
        write_json(where, data)
    return where


def prepare(out: str) -> None:
    """A local output folder made ready for a job: what a killed job left half-written (temporary parts)
    removed; a file where the folder should be refused."""
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise OutputError(f"--out {out} is a file; name a folder for the Parquet dataset")
    for leftover in (path / "sentences").glob(".part-*") if (path / "sentences").is_dir() else ():
        shutil.rmtree(leftover, ignore_errors=True)
