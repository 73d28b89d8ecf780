"""Where the label job's model runs: Apache Spark, local (`local[N]`, started by the job) or a running cluster
(`--address spark://host:7077`), the same code either way.

Why Spark rather than Ray Data: MLflow's own distributed scorer, which this project's model must work with, is
Spark's (`mlflow.pyfunc.spark_udf`), so Spark is needed anyway, and one engine is less to install and run than
two; it runs from the PyPI wheel with Debian's Java 17, locally and on the clusters people already have.

Each Spark worker is a Python process that loads the model once (`spark.python.worker.reuse`) and labels the
records of its partitions with `label_records`, the worker loop, which the GPU benchmark runs without Spark.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import zipfile
from functools import partial
from pathlib import Path

from .predict import Labeler, split_sections
from .sentences import InputError, check_text, segment

ROW_FIELDS = {"id": "string", "position": "long", "sentence_index": "long", "text": "string", "label": "string",
              "probability": "double", "heading": "string", "heading_category": "string", "source": "string",
              "where": "string", "error": "string"}


def split_record(record: dict) -> list[tuple[str | None, str | None, str]]:
    """(heading, category, sentence) of a record: XML sections keep their Label and NlmCategory; plain text
    has its headings recognised (predict.split_sections, NLM's list)."""
    if record.get("sections") is not None:
        out = []
        for heading, category, text in record["sections"]:
            out += [(heading, category, s) for s in segment(" ".join(check_text(text).split()))]
        if not out:
            raise InputError("the abstract is empty")
        return out
    return split_sections(record["text"])


def label_records(labeler: Labeler, records: list[dict], relabel: bool = False,
                  batch_size: int | None = None) -> list[dict]:
    """The worker loop: one row per sentence of each record, or one row with `error` for a record that cannot
    be labelled (empty, too long, not valid Unicode, or flagged bad when read)."""
    rows, good, split = [], [], []
    for record in records:
        if record.get("error"):
            rows.append({"id": record["id"], "position": record["position"], "where": record["where"],
                         "error": record["error"]})
            continue
        try:
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
    return rows


_labelers: dict[str, Labeler] = {}


def _arrow_schema():
    import pyarrow as pa
    types = {"string": pa.string(), "long": pa.int64(), "double": pa.float64()}
    return pa.schema([(k, types[v]) for k, v in ROW_FIELDS.items()])


def _worker(model_name: str, relabel: bool, threads: int, backend: str, batches):
    """mapInArrow on a Spark worker: the model unpacked from SparkFiles, loaded once per Python worker. Arrow in and out,
    no pandas between (pyspark 4.3 does not yet take pandas 3's Arrow-backed strings)."""
    import pyarrow as pa
    import torch
    from pyspark import SparkFiles
    if model_name not in _labelers:
        torch.set_num_threads(threads)
        if torch.cuda.is_available():  # one GPU per worker: Spark's GPU resource if scheduled, else by process
            from pyspark import TaskContext
            gpus = (TaskContext.get().resources().get("gpu") if TaskContext.get() else None)
            torch.cuda.set_device(int(gpus.addresses[0]) if gpus else os.getpid() % torch.cuda.device_count())
        _labelers[model_name] = Labeler.load(SparkFiles.get(model_name), backend)
    schema = _arrow_schema()
    for batch in batches:
        records = [json.loads(x) for x in batch.column("record").to_pylist()]
        rows = label_records(_labelers[model_name], records, relabel)
        yield pa.RecordBatch.from_pylist([{k: r.get(k) for k in ROW_FIELDS} for r in rows], schema=schema)


class EngineError(ValueError):
    """Spark could not start: one line saying why and what to install."""


class SparkEngine:
    """A Spark session with this package and the model shipped to its workers; `label` maps records to rows."""

    def __init__(self, model_dir: Path, workers: int, address: str | None = None, relabel: bool = False,
                 backend: str = "auto"):
        import warnings
        from pyspark.sql import SparkSession
        warnings.filterwarnings("ignore", message="PySpark does not yet fully support pandas")  # 3.x: works here
        self.workers, self.relabel = workers, relabel
        self._tmp = Path(tempfile.mkdtemp(prefix="pubmed-rct-spark."))
        threads = max(1, (os.cpu_count() or 1) // workers) if address is None else 1
        builder = (SparkSession.builder.appName("pubmed-rct-label").master(address or f"local[{workers}]")
                   .config("spark.ui.enabled", "false")
                   .config("spark.sql.execution.arrow.pyspark.enabled", "true")
                   .config("spark.python.worker.reuse", "true")
                   .config("spark.local.dir", str(self._tmp)))
        if address is None:  # everything on this machine: nothing listens beyond loopback
            builder = builder.config("spark.driver.host", "127.0.0.1").config("spark.driver.bindAddress", "127.0.0.1")
        else:
            builder = builder.config("spark.cores.max", str(workers)).config("spark.executor.cores", "1")
        try:
            self.spark = builder.getOrCreate()
        except Exception as e:  # noqa: BLE001 - pyspark raises its own errors for a missing or broken Java
            shutil.rmtree(self._tmp, ignore_errors=True)
            raise EngineError(f"Spark could not start ({' '.join(str(e).split())[:300]}); the label job needs Java 17 "
                              "(bin/setup installs it; Debian: apt-get install openjdk-17-jre-headless)"
                              + (f" and a reachable cluster at {address}" if address else "")) from e
        self.spark.sparkContext.setLogLevel("ERROR")
        self.spark.sparkContext.addPyFile(str(_package_zip(self._tmp)))
        # A zip archive, unpacked on each executor (a folder can be shipped by addFile only in local mode).
        archive = shutil.make_archive(str(self._tmp / "model"), "zip", root_dir=model_dir)
        self.model_name = Path(archive).name
        self.spark.sparkContext.addArchive(archive)
        self._map = partial(_worker, self.model_name, relabel, threads, backend)

    def label(self, records: list[dict]) -> list[dict]:
        """Rows (label_records) of the records, in record order."""
        if not records:
            return []
        rdd = self.spark.sparkContext.parallelize([(json.dumps(r),) for r in records],  # sliced here: no shuffle
                                                  numSlices=min(len(records), self.workers))
        df = self.spark.createDataFrame(rdd, "record string")
        schema = ", ".join(f"{k} {v}" for k, v in ROW_FIELDS.items())
        rows = df.mapInArrow(self._map, schema=schema).toArrow().to_pylist()
        return sorted(rows, key=lambda r: (r["position"], -1 if r["sentence_index"] is None else r["sentence_index"]))

    def stop(self) -> None:
        self.spark.stop()
        shutil.rmtree(self._tmp, ignore_errors=True)


def _package_zip(folder: Path) -> Path:
    """This package as a zip for the workers' Python path (addPyFile), data files included."""
    root = Path(__file__).resolve().parent
    path = folder / "pubmed_rct.zip"
    with zipfile.ZipFile(path, "w") as z:
        for p in root.rglob("*"):
            if p.is_file() and "__pycache__" not in p.parts:
                z.write(p, Path("pubmed_rct") / p.relative_to(root))
    return path
