"""A run's life and what goes into it: start, reopen, end, params, metrics (and what a tracking outage kept
from the run, sent later), artifacts, tags."""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from .store import experiment_id, mlflow_client, tracking_uri


def start_run(experiment: str, params: dict, tags: dict) -> str:
    """A new run with params and tags; returns its id."""
    client = mlflow_client()
    run = client.create_run(experiment_id(client, experiment), tags=tags,
                            run_name=os.environ.get("DVC_EXP_NAME") or None)
    log_params(run.info.run_id, params)
    return run.info.run_id


def reopen_or_start(run_id: str | None, experiment: str, params: dict, tags: dict) -> str:
    """The train stage's run, or a new one where this store does not hold it (tracking was down then, or it was
    deleted). Any other failure of the store (refused credentials, the network) is raised, never taken for
    "not found"."""
    if run_id:
        if find_run(mlflow_client(), run_id) is not None:
            return run_id
        print(f"WARNING: MLflow run {run_id} not found at {tracking_uri()}; starting a new run", file=sys.stderr)
    return start_run(experiment, params, tags)


def find_run(client, run_id: str):
    """The run, or None where this store does not hold it; other store failures are raised."""
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
    if find_run(client, run_id) is None:
        return False
    client.update_run(run_id, status="RUNNING")
    return True


def end_if_running(run_id: str, status: str, attempts: int = 3) -> None:
    """End a run left RUNNING by a process that was killed (nothing to do if it ended or is not here); a busy
    store (SQLite locked by another writer) is tried again, `attempts` times a second apart."""
    client = mlflow_client()
    for attempt in range(1, attempts + 1):
        try:
            run = find_run(client, run_id)
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
