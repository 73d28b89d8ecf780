"""Where the label job runs: Apache Spark, local (`local[N]`, started by the job) or a running cluster
(`--address spark://host:7077`), the same code either way.

Why Spark rather than Ray Data: MLflow's own distributed scorer, which this project's model must work with, is
Spark's (`mlflow.pyfunc.spark_udf`), so Spark is needed anyway, and one engine is less to install and run than
two; it runs from the PyPI wheel with Debian's Java 17, locally and on the clusters people already have.

The driver submits each unit of work as a Spark job of one task (`submit`), from as many threads as there are
task slots, so a slot that finishes takes the next unit with no barrier between units, and Spark retries a
failed task (`spark.task.maxFailures`; `local[N,4]` locally). What Spark's own pieces would do, and why they
are not used here (docs/label.md): its XML source loses text around inline markup; `predict_batch_udf` maps
one row to one row, where an abstract gives many sentence rows and whole abstracts are the model's input; its
DataFrame writer names files per task attempt and commits per job, where a unit's part must keep one name and
count as soon as it is written; and its S3 client needs jars the pyspark wheel lacks.
"""
from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import re
import shutil
import sys
import tempfile
import zipfile
from pathlib import Path

from .inputs import is_s3

# What the workers need of a model folder to run it on CPU through ONNX Runtime (the weights are not read).
ONNX_FILES = ("config.json", "inference.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
              "vocab.txt", "model.int8.onnx", "model.fp32.onnx")


class EngineError(ValueError):
    """Spark could not start, or its workers cannot run the job: one line saying why and what to do."""


def temp_folder(out: str) -> Path:
    """Spark's scratch space for a job on `out`: inside the output folder, or for S3 a folder of the machine's
    temp space named after it; emptied when the next job on `out` starts, so kills never pile it up."""
    if is_s3(out):
        return Path(tempfile.gettempdir()) / f"pubmed-rct-spark-{hashlib.sha1(out.encode()).hexdigest()[:12]}"
    return Path(out) / ".spark"


class Engine:
    """A Spark session with this package (and, on a cluster, the model) shipped to its workers."""

    def __init__(self, model_dir: Path, workers: int, address: str | None, out: str, backend: str,
                 log_level: str = "OFF"):
        import warnings
        from pyspark.sql import SparkSession
        warnings.filterwarnings("ignore", message="PySpark does not yet fully support pandas")
        self.workers, self.tmp = workers, temp_folder(out)
        # torch threads per Python worker: the cores shared out locally; one each on a cluster (one core a task)
        self.threads = max(1, (os.cpu_count() or 1) // workers) if address is None else 1
        shutil.rmtree(self.tmp, ignore_errors=True)  # what a killed job left
        self.tmp.mkdir(parents=True)
        quiet = Path(__file__).resolve().parents[1] / "data" / "log4j2.properties"  # silent: one bar, one summary
        java = f"-Djava.io.tmpdir={self.tmp} -XX:-UsePerfData -Dlog4j2.configurationFile={quiet.as_uri()}"
        builder = (SparkSession.builder.appName("pubmed-rct-label")
                   .master(address or f"local[{workers},4]")  # 4: tries per task, as a cluster gives by default
                   .config("spark.ui.enabled", "false").config("spark.ui.showConsoleProgress", "false")
                   .config("spark.python.worker.reuse", "true").config("spark.local.dir", str(self.tmp))
                   .config("spark.driver.extraJavaOptions", java).config("spark.executor.extraJavaOptions", java)
                   .config("spark.scheduler.mode", "FIFO"))
        if address is None:  # local workers run this interpreter (a venv run as .venv/bin/python from cron or
            # systemd), not the python3 on PATH that PySpark takes by default, which may lack every package; a
            # cluster's workers run PYSPARK_PYTHON, or their python3 (this path may not exist there)
            os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        if address is None:  # everything on this machine: nothing listens beyond loopback
            builder = builder.config("spark.driver.host", "127.0.0.1").config("spark.driver.bindAddress", "127.0.0.1")
        else:
            builder = builder.config("spark.cores.max", str(workers))
        try:
            self.spark = builder.getOrCreate()
        except Exception as e:  # noqa: BLE001 - pyspark raises its own errors for a missing or broken Java
            shutil.rmtree(self.tmp, ignore_errors=True)
            raise EngineError(f"Spark could not start ({' '.join(str(e).split())[:300]}); the label job needs Java 17 "
                              "(bin/setup installs it; Debian: apt-get install openjdk-17-jre-headless)"
                              + (f" and a reachable cluster at {address}" if address else "")) from e
        self.context = self.spark.sparkContext
        self.context.setLogLevel(log_level)  # OFF: a failed task is the job's own one line (task_errors)
        try:
            with task_errors():
                self.context.addPyFile(str(_package_zip(self.tmp)))
                self.model_dir = str(model_dir.resolve())
                if address is not None:  # other machines: the model goes as an archive, unpacked by each executor
                    archive = _model_zip(model_dir, self.tmp, backend)
                    self.context.addArchive(str(archive))
                    self.model_dir = f"spark-files:{archive.name}"
        except (EngineError, OSError) as e:
            self.stop()
            if isinstance(e, OSError) and e.errno not in (errno.ENOSPC, errno.EDQUOT):
                raise
            if isinstance(e, EngineError) and "No space left" not in str(e):
                raise
            raise OSError(errno.ENOSPC, f"no space left on the device under {out} (Spark's scratch space "
                                        f"{self.tmp}); free some space and run the job again") from None

    def submit(self, function, argument):
        """Run `function(argument)` as one Spark task, in a job of its own; its result (small), or EngineError
        naming what failed in the worker after Spark's retries."""
        with task_errors():
            return self.context.parallelize([argument], 1).map(function).collect()[0]

    def stop(self) -> None:
        self.spark.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)


@contextlib.contextmanager
def task_errors():
    """A failed Spark job as EngineError: the Python error its last task attempt ended with, in one line."""
    from py4j.protocol import Py4JJavaError
    from pyspark.errors.exceptions.captured import CapturedException
    try:
        yield
    except Py4JJavaError as e:
        raise EngineError(worker_error(str(e.java_exception))) from None
    except CapturedException as e:
        raise EngineError(worker_error(str(e))) from None


def worker_error(text: str) -> str:
    """The Python error at the bottom of a failed task's traceback, in one line, with what to do where the
    workers lack a package."""
    lines = [l.strip() for l in text.splitlines() if re.match(r"\s*[A-Za-z_.]*(Error|Exception)\b.*:", l)]
    last = lines[-1] if lines else " ".join(text.split())[:300]
    if m := re.search(r"No module named '([^']+)'", last):
        return (f"the Spark workers' Python lacks the module {m.group(1)!r} ({last}); install the project's "
                "requirements there (bin/setup on each worker) or point PYSPARK_PYTHON at a Python that has them")
    return last


def resolve_model(model_dir: str) -> str:
    """A model folder on this worker: as given (this machine, a shared folder), or the archive Spark unpacked."""
    if model_dir.startswith("spark-files:"):
        from pyspark import SparkFiles
        return SparkFiles.get(model_dir.removeprefix("spark-files:"))
    return model_dir


def _package_zip(folder: Path) -> Path:
    """This package as a zip for the workers' Python path (addPyFile), data files included."""
    root = Path(__file__).resolve().parents[1]
    path = folder / "pubmed_rct.zip"
    with zipfile.ZipFile(path, "w") as z:
        for p in root.rglob("*"):
            if p.is_file() and "__pycache__" not in p.parts:
                z.write(p, Path("pubmed_rct") / p.relative_to(root))
    return path


def _model_zip(model_dir: Path, folder: Path, backend: str) -> Path:
    """The model folder as a zip archive, stored (weights do not compress): for --backend onnx only what ONNX
    Runtime reads, else the whole folder (a GPU worker runs PyTorch)."""
    path = folder / "model.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        for p in sorted(model_dir.iterdir()):
            if p.is_file() and (backend != "onnx" or p.name in ONNX_FILES):
                z.write(p, p.name)
    return path
