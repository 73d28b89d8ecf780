"""MLflow tracking: one run per pipeline run, lineage tags both ways, the model logged as a pyfunc.

With MLFLOW_TRACKING_URI unset, runs go to a SQLite store at a fixed absolute place in the project
(`mlruns.db`, artifacts in `mlartifacts/`), also when DVC runs the pipeline in a temporary copy.
"""
from __future__ import annotations

import collections
import os
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path

import yaml


_TMP_EXPS = f"{os.sep}.dvc{os.sep}tmp{os.sep}exps{os.sep}"


def project_home(cwd: str | Path | None = None) -> Path:
    """The project folder, also from inside `dvc exp run --temp/--queue` copies (.dvc/tmp/exps/...)."""
    cwd = str(Path(cwd or os.getcwd()).resolve())
    return Path(cwd.split(_TMP_EXPS)[0]) if _TMP_EXPS in cwd else Path(cwd)


def embedded_uri() -> str:
    return f"sqlite:///{project_home() / 'mlruns.db'}"


def tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or embedded_uri()


class TrackingError(RuntimeError):
    pass


def store_errors() -> tuple[type[BaseException], ...]:
    """What a failing or unreachable MLflow store raises: MLflow's own errors, HTTP failures (requests), the
    network and the disk (OSError), and TrackingError. A bug (TypeError, KeyError, ...) is none of them, and
    surfaces as itself instead of as "the server is down"."""
    from mlflow.exceptions import MlflowException
    from requests import RequestException
    return MlflowException, RequestException, OSError, TrackingError


def check_server(uri: str) -> None:
    """Fail fast, before training, when a tracking server is unreachable or refuses the credentials."""
    if not uri.startswith(("http://", "https://")):
        return
    import requests
    user, password = os.environ.get("MLFLOW_TRACKING_USERNAME"), os.environ.get("MLFLOW_TRACKING_PASSWORD")
    token = os.environ.get("MLFLOW_TRACKING_TOKEN")
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        r = requests.get(f"{uri.rstrip('/')}/api/2.0/mlflow/experiments/search", params={"max_results": 1},
                         auth=(user, password) if user else None, headers=headers, timeout=10)
    except requests.RequestException as e:
        raise TrackingError(f"MLflow tracking server {uri} is unreachable: {type(e).__name__}: {e}") from e
    if r.status_code == 401:
        raise TrackingError(f"MLflow tracking server {uri} refused the credentials (HTTP 401): set "
                            "MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD")
    if r.status_code == 403:
        raise TrackingError(f"MLflow tracking server {uri}: user lacks permission (HTTP 403)")
    if r.status_code >= 400:
        raise TrackingError(f"MLflow tracking server {uri} answered HTTP {r.status_code}: {r.text[:200]}")


def mlflow_client():
    """The one MlflowClient every module uses, on this project's tracking URI (tracking_uri)."""
    import mlflow
    mlflow.set_tracking_uri(tracking_uri())
    return mlflow.MlflowClient()


def _experiment_id(client, name: str) -> str:
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    location = None
    if tracking_uri() == embedded_uri():  # (mlflow.set_tracking_uri sets MLFLOW_TRACKING_URI itself)
        location = (project_home() / "mlartifacts").as_uri()
    return client.create_experiment(name, artifact_location=location)


def git_state(cwd: Path = Path(".")) -> dict[str, str]:
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True).stdout.strip()
    commit = git("rev-parse", "HEAD")
    if not commit:
        return {}
    dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    return {"mlflow.source.git.commit": commit, "git.dirty": str(dirty).lower()}


def lineage_tags(deps: list[str], dataset: str, lock: Path = Path("dvc.lock")) -> dict[str, str]:
    """Tags that lead from an MLflow run back to DVC: commit, experiment, data hashes, dataset id."""
    tags = {**git_state(), "dataset": dataset}
    for env, tag in (("DVC_EXP_NAME", "dvc.exp_name"), ("DVC_EXP_BASELINE_REV", "dvc.exp_baseline_rev")):
        if os.environ.get(env):
            tags[tag] = os.environ[env]
    if lock.is_file():
        outs = {}
        for stage in (yaml.safe_load(lock.read_text()) or {}).get("stages", {}).values():
            for out in stage.get("outs", []):
                outs[out["path"]] = out.get("md5", "")
        for dep in deps:
            if dep in outs:
                tags[f"dvc.dep.{dep}"] = outs[dep]
    return tags


def start_run(experiment: str, params: dict, tags: dict) -> str:
    """A new run with params and tags; returns its id."""
    client = mlflow_client()
    run = client.create_run(_experiment_id(client, experiment), tags=tags,
                            run_name=os.environ.get("DVC_EXP_NAME") or None)
    log_params(run.info.run_id, params)
    return run.info.run_id


def reopen_or_start(run_id: str | None, experiment: str, params: dict, tags: dict) -> str:
    """The train stage's run, or a new one when that run cannot be found (tracking was down then)."""
    client = mlflow_client()
    if run_id:
        try:
            client.get_run(run_id)
            return run_id
        except Exception:  # noqa: BLE001 - any "not found" from any store
            warnings.warn(f"MLflow run {run_id} not found at {tracking_uri()}; starting a new run")
    return start_run(experiment, params, tags)


def _find_run(client, run_id: str):
    from mlflow.exceptions import MlflowException
    try:
        return client.get_run(run_id)
    except MlflowException as e:
        if e.error_code == "RESOURCE_DOES_NOT_EXIST":  # not in this store (another tracking URI, a deleted run)
            return None
        raise


def reopen(run_id: str) -> bool:
    """Set a run of this store back to RUNNING (training resumed from a checkpoint); False if there is none."""
    client = mlflow_client()
    if _find_run(client, run_id) is None:
        return False
    client.update_run(run_id, status="RUNNING")
    return True


def end_if_running(run_id: str, status: str, attempts: int = 3) -> None:
    """End a run left RUNNING by a process that was killed (nothing to do if it ended or is not here); a busy
    store (SQLite locked by another writer) is tried again, `attempts` times a second apart."""
    client = mlflow_client()
    for attempt in range(1, attempts + 1):
        try:
            run = _find_run(client, run_id)
            if run is not None and run.info.status == "RUNNING":
                client.set_terminated(run_id, status)
            return
        except Exception:  # noqa: BLE001 - whatever the store raised; the last one is raised
            if attempt == attempts:
                raise
            time.sleep(1)


def log_params(run_id: str, params: dict) -> None:
    from mlflow.entities import Param
    mlflow_client().log_batch(run_id, params=[Param(k, str(v)) for k, v in sorted(params.items())])


def _metrics(metrics: dict, step: int) -> list:
    from mlflow.entities import Metric
    now = int(time.time() * 1000)
    return [Metric(k, float(v), now, step) for k, v in sorted(metrics.items()) if isinstance(v, (int, float))]


def _log_batches(run_id: str, batch: list) -> None:
    client = mlflow_client()
    for i in range(0, len(batch), 1000):  # the REST API takes at most 1,000 metrics a call
        client.log_batch(run_id, metrics=batch[i:i + 1000])


def log_metrics(run_id: str, metrics: dict, step: int = 0) -> None:
    _log_batches(run_id, _metrics(metrics, step))


def quick_http_failures() -> None:
    """MLflow's HTTP calls in this process fail in seconds when the server is gone, instead of retrying with
    back-off for ~12 minutes (7 retries); MetricSender does the retrying, off the training thread. Values a
    user set in the environment are kept."""
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")


class MetricSender:
    """Metrics logged off the training thread. `log` only appends to a bounded queue and never waits on the
    network; a daemon thread sends what has queued up once a second (`interval_s`) in batches of up to 1,000,
    keeps what could not be sent and tries again with back-off (1 s doubling to 5 s) until the server
    answers. Past `max_pending` the oldest are dropped (the train stage's files keep the whole curve; evaluate
    sends what the run lacks)."""

    def __init__(self, run_id: str, max_pending: int = 100_000, interval_s: float = 1.0,
                 retry_s: tuple[float, float] = (1.0, 5.0)):
        self.run_id, self.max_pending, self.interval_s, self.retry_s = run_id, max_pending, interval_s, retry_s
        self.sent = self.dropped = self.failures = 0
        self._pending: collections.deque = collections.deque()  # (sequence number, Metric)
        self._seq, self._deadline = 0, None
        self._cond = threading.Condition()
        self._client = mlflow_client()  # imports mlflow here: importing it in two threads at once breaks
        self._thread = threading.Thread(target=self._send_loop, name="mlflow-metrics", daemon=True)
        self._thread.start()

    def log(self, metrics: dict, step: int) -> None:
        batch = _metrics(metrics, step)  # stamped now, sent later
        with self._cond:
            for metric in batch:
                self._seq += 1
                self._pending.append((self._seq, metric))
            while len(self._pending) > self.max_pending:
                self._pending.popleft()
                self.dropped += 1

    def pending(self) -> int:
        with self._cond:
            return len(self._pending)

    def close(self, wait_s: float = 30.0) -> int:
        """Send what is queued, waiting at most wait_s; returns how many metrics are still unsent."""
        with self._cond:
            self._deadline = time.monotonic() + wait_s
            self._cond.notify()
        self._thread.join(wait_s + 1)
        return self.pending()

    def _pause(self, seconds: float, flush: bool = False) -> bool:
        """Wait `seconds` (never past close's deadline; with flush, not at all once close was called); False
        once that deadline has passed."""
        until = time.monotonic() + seconds
        with self._cond:
            while True:
                now, end = time.monotonic(), until
                if self._deadline is not None:
                    if now >= self._deadline:
                        return False
                    if flush:
                        return True
                    end = min(until, self._deadline)
                if now >= end:
                    return True
                self._cond.wait(end - now)

    def _send_loop(self) -> None:
        client, delay = self._client, self.retry_s[0]
        while True:
            with self._cond:
                if not self._pending and self._deadline is not None:
                    return
                batch = [item for _, item in zip(range(1000), self._pending)]
            if not batch:
                self._pause(self.interval_s, flush=True)
                continue
            try:
                client.log_batch(self.run_id, metrics=[metric for _, metric in batch])
            except Exception as e:  # noqa: BLE001 - any failure to reach the store: keep and retry
                self.failures += 1
                if self.failures == 1:
                    print(f"WARNING: MLflow logging failed ({type(e).__name__}: {str(e)[:200]}); training goes on, "
                          f"metrics are kept and sent when {tracking_uri()} answers again", file=sys.stderr)
                if not self._pause(delay):
                    return
                delay = min(delay * 2, self.retry_s[1])
                continue
            with self._cond:
                last = batch[-1][0]
                while self._pending and self._pending[0][0] <= last:
                    self._pending.popleft()
                    self.sent += 1
                more = len(self._pending) >= 1000
            if delay > self.retry_s[0]:
                print(f"MLflow logging resumed at {tracking_uri()}; sending the metrics kept meanwhile",
                      file=sys.stderr)
            delay = self.retry_s[0]
            if not more and not self._pause(self.interval_s, flush=True):
                return


def missing_steps(run_id: str, key: str, steps: list[int]) -> set[int]:
    """Steps of `steps` with no value of metric `key` in the run yet."""
    logged = {m.step for m in mlflow_client().get_metric_history(run_id, key)}
    return set(steps) - logged


def log_lacking(run_id: str, metrics: dict, step: int) -> int:
    """Log each of `metrics` at `step` unless the run holds that value there already (train sent it; a curve's
    point of the same key at that step is another value); returns how many were sent."""
    client = mlflow_client()
    lacking = {k: v for k, v in metrics.items() if not any(
        m.step == step and m.value == float(v) for m in client.get_metric_history(run_id, k))}
    log_metrics(run_id, lacking, step)
    return len(lacking)


def backfill(run_id: str, rows: list[dict], step_key: str, keys: list[str]) -> int:
    """Log the `keys` of each row at its step where the run lacks them (a curve cut by a tracking outage);
    returns how many metrics were sent."""
    batch = []
    for key in keys:
        todo = missing_steps(run_id, key, [int(r[step_key]) for r in rows])
        batch += [m for r in rows if int(r[step_key]) in todo
                  for m in _metrics({key: float(r[key])}, int(r[step_key]))]
    _log_batches(run_id, batch)
    return len(batch)


def log_artifacts(run_id: str, paths: list[str | Path], artifact_path: str | None = None) -> None:
    client = mlflow_client()
    for p in paths:
        client.log_artifact(run_id, str(p), artifact_path)


def log_artifact_as(run_id: str, path: str | Path, name: str) -> None:
    """Log one file under another name at the run's artifact root."""
    import shutil
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        shutil.copy2(path, Path(tmp) / name)
        mlflow_client().log_artifact(run_id, str(Path(tmp) / name))


def set_tags(run_id: str, tags: dict) -> None:
    client = mlflow_client()
    for k, v in tags.items():
        client.set_tag(run_id, k, str(v))


def finish(run_id: str, status: str = "FINISHED") -> None:
    mlflow_client().set_terminated(run_id, status)
