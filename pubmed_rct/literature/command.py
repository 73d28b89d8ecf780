"""`python -m pubmed_rct label`: its arguments, and the job wired from them in the order that loses nothing:
the inputs and the model checked, the output locked and its manifest read, and only then Spark started."""
from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from ..choices import SPARK_LOG_LEVELS
from ..options import POSITIVE, add_model
from ..tracking.registry import local_folder
from .manifest import JobError

HELP = ("label a literature (PubMed XML, JSON Lines, Parquet; local or s3://) into a Parquet dataset, on Spark "
        "(local, or a cluster with --address)")
WEIGHTS = ("model.safetensors", "pytorch_model.bin")
ONNX = ("model.int8.onnx", "model.fp32.onnx")


def gpus() -> int:
    """GPUs on this machine, without importing torch in the driver (nvidia-smi, where there is one)."""
    if not shutil.which("nvidia-smi"):
        return 0
    r = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True)
    return sum(line.startswith("GPU ") for line in r.stdout.splitlines()) if r.returncode == 0 else 0


def add_arguments(parser) -> None:
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="files, globs, folders or s3:// prefixes")
    parser.add_argument("--out", required=True, help="the output folder, local or s3:// (Parquet parts, "
                                                     "manifest.json)")
    add_model(parser)
    parser.add_argument("--relabel", action="store_true", help="the model labels structured abstracts too, and "
                        "agreement.json compares it with the authors' NlmCategory")
    parser.add_argument("--workers", type=POSITIVE, help="Spark tasks at once, each a Python worker holding one "
                        "model (default: one per GPU, else one per CPU core)")
    parser.add_argument("--address", help="a running Spark cluster, e.g. spark://host:7077 (default: local[WORKERS])")
    parser.add_argument("--chunk", type=POSITIVE, default=200, help="records per unit of work and per output part "
                        "(the unit of scheduling and resuming; about a minute of one CPU worker at BERT-base size, "
                        "more on a GPU)")
    parser.add_argument("--batch", type=POSITIVE, default=64, help="abstracts per model call inside a unit")
    parser.add_argument("--spark-log", choices=SPARK_LOG_LEVELS, default="OFF", help="Spark's own log on the "
                        "console (default OFF: the job names every failure itself, in one line)")


def check_model(folder: Path, backend: str) -> None:
    """A folder the workers can run, checked on the driver before anything starts (config.json with this
    project's context and labels, and weights or an ONNX file), read without loading a model."""
    config = folder / "config.json"
    if not folder.is_dir() or not config.is_file():
        raise FileNotFoundError(f"--model {folder}: no trained model here (no config.json); give a folder written "
                                "by the train stage, or models:/NAME@ALIAS")
    try:
        settings = json.loads(config.read_text(encoding="utf-8"))
    except ValueError as e:
        raise JobError(f"--model {config}: not JSON ({e}); the model folder is damaged") from e
    if not isinstance(settings, dict) or not (settings.get("context") or settings.get("sentence_context")) or \
            not settings.get("id2label"):
        raise JobError(f"--model {config}: no 'context' or labels; it was not trained by this project")
    onnx = [name for name in ONNX if (folder / name).is_file()]
    weights = [name for name in WEIGHTS if (folder / name).is_file()]
    if backend == "onnx" and not onnx:
        raise JobError(f"--backend onnx: {folder} holds no ONNX file (`python -m pubmed_rct export-onnx {folder}`)")
    if not onnx and not weights:
        raise JobError(f"--model {folder}: no weights ({', '.join(WEIGHTS)}) and no ONNX file; the folder is "
                       "incomplete")


def main(args) -> int:
    """The label command. A full disk anywhere under --out is one line naming it."""
    try:
        return _main(args)
    except OSError as e:
        if e.errno not in (errno.ENOSPC, errno.EDQUOT) or "under" in str(e.strerror):
            raise
        raise OSError(e.errno, f"no space left on the device under {args.out} ({e.strerror}"
                               f"{f': {e.filename}' if e.filename else ''}); free some space and run the job again: "
                               "it goes on from the last part written") from None


def _main(args) -> int:
    from .. import lifetime
    from . import inputs, job
    from .manifest import model_identity, open_manifest, s3_lock
    from .spark import Engine, EngineError
    out = inputs.identity(args.out)  # a local folder resolved, as inputs are: it is never one of them
    options = inputs.s3_options() if inputs.is_s3(out) or any(map(inputs.is_s3, args.inputs)) else None
    found = inputs.expand(args.inputs, out, options)
    local = local_folder(args.model, args.run_id)
    check_model(local, args.backend)
    model = model_identity(f"runs:/{args.run_id}/model" if args.run_id else args.model, local, args.backend)
    workers = args.workers or (gpus() if not args.address else 0) or len(os.sched_getaffinity(0))
    open_manifest(out, model, args.chunk, args.relabel, options)  # another model's folder: refused, nothing written
    lock = lifetime.exclusive(Path(out) / ".lock", f"a label job on {out}", wait_s=0) if not inputs.is_s3(out) \
        else s3_lock(out, options)
    made = not inputs.is_s3(out) and not Path(out).exists()
    with lock:
        if not inputs.is_s3(out):
            job.prepare(out)  # under the lock: what a killed job left, never a running one's
        try:
            engine = Engine(local, workers, args.address, out, args.backend, args.spark_log)
        except EngineError:
            if made:  # nothing was written: leave no folder behind
                shutil.rmtree(out, ignore_errors=True)
            raise
        try:
            return job.run(found, out, engine, model, args.chunk, args.batch, args.relabel, args.backend, options)
        finally:
            engine.stop()


COMMANDS = {"label": (HELP, add_arguments, main)}
