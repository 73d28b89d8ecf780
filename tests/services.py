"""Real services for the tests, on 127.0.0.1: an MLflow tracking server and an S3 server (rclone)."""
from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Iterator

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = ROOT / ".venv" / "bin"
S3_KEYS = ("testaccesskey", "testsecretkey0123")  # rclone refuses very short keys
ADMIN_PASSWORD = "admin-password-0123"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(url: str, proc: subprocess.Popen, log: Path, seconds: int = 120) -> None:
    deadline = time.time() + seconds
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"service exited {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except urllib.error.HTTPError:
            return  # it answers, even if with 4xx
        except OSError:
            time.sleep(0.5)
    raise RuntimeError(f"{url} did not answer within {seconds}s:\n{log.read_text()[-3000:]}")


@contextlib.contextmanager
def service(cmd: list[str], url: str, folder: Path, env: dict | None = None, cwd: Path | None = None) -> Iterator[None]:
    """Start `cmd` in its own process group, wait until `url` answers, stop the whole group at the end."""
    folder.mkdir(parents=True, exist_ok=True)
    log = folder / "service.log"
    full_env = {**os.environ, "PATH": f"{VENV_BIN}:{os.environ['PATH']}", **(env or {})}
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=full_env, start_new_session=True, cwd=cwd)
    try:
        wait_for(url, proc, log)
        yield
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@contextlib.contextmanager
def mlflow_server(folder: Path, auth: bool = False) -> Iterator[str]:
    """bin/tracking-server on a free port (SQLite, local artifacts, one worker); yields its URI."""
    port = free_port()
    env = {"MLFLOW_HOME": str(folder), "MLFLOW_PORT": str(port), "MLFLOW_AUTH": "1" if auth else "0",
           "MLFLOW_AUTH_ADMIN_PASSWORD": ADMIN_PASSWORD, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    with service([str(ROOT / "bin" / "tracking-server")], f"http://127.0.0.1:{port}/health", folder, env):
        yield f"http://127.0.0.1:{port}"


@contextlib.contextmanager
def s3_server(folder: Path, bucket: str = "pubmed-rct") -> Iterator[str]:
    """`rclone serve s3` over a folder, with `bucket` created; yields the endpoint URL."""
    port = free_port()
    (folder / "root" / bucket).mkdir(parents=True, exist_ok=True)
    cmd = [str(VENV_BIN / "rclone"), "serve", "s3", "--addr", f"127.0.0.1:{port}", "--auth-key", ",".join(S3_KEYS),
           # 0s / polling make rclone 1.75 spin at 100 % CPU; writes all go through this server, so 1s is never stale
           "--dir-cache-time", "1s", "--poll-interval", "0",
           "--vfs-cache-mode", "off", str(folder / "root")]
    with service(cmd, f"http://127.0.0.1:{port}/", folder):
        yield f"http://127.0.0.1:{port}"


@contextlib.contextmanager
def spark_cluster(folder: Path, workers: int = 2) -> Iterator[str]:
    """A Spark standalone cluster on 127.0.0.1: a master and `workers` worker processes of one core and 1 GiB
    each, from the pyspark wheel (its spark-class, Java 17); yields the master's spark:// URL."""
    import json
    import sys
    import pyspark
    home = Path(pyspark.__file__).parent
    env = {"SPARK_HOME": str(home), "PYSPARK_PYTHON": sys.executable, "SPARK_LOG_DIR": str(folder / "logs"),
           "SPARK_LOCAL_IP": "127.0.0.1"}
    port, ui = free_port(), free_port()
    spark_class = str(home / "bin" / "spark-class")
    master = [spark_class, "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1", "--port", str(port),
              "--webui-port", str(ui)]
    url = f"spark://127.0.0.1:{port}"
    with contextlib.ExitStack() as stack:
        stack.enter_context(service(master, f"http://127.0.0.1:{ui}/json/", folder / "master", env))
        for i in range(workers):
            worker_ui = free_port()
            stack.enter_context(service([spark_class, "org.apache.spark.deploy.worker.Worker", url, "--cores", "1",
                                         "--memory", "1g", "--webui-port", str(worker_ui), "--host", "127.0.0.1",
                                         "--work-dir", str(folder / f"worker{i}" / "work")],
                                        f"http://127.0.0.1:{worker_ui}/json/", folder / f"worker{i}", env))
        deadline, state = time.time() + 120, {}
        while state.get("aliveworkers") != workers:  # registered with the master, or the cluster is not there
            if time.time() > deadline:
                raise RuntimeError(f"{workers} Spark workers did not register within 120 s: {state}")
            time.sleep(0.5)
            state = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{ui}/json/", timeout=5).read())
        yield url
