"""MLflow tracking: one run per pipeline run, lineage tags both ways, the model logged as a pyfunc.

With MLFLOW_TRACKING_URI unset, runs go to a SQLite store at a fixed absolute place in the project
(`mlruns.db`, artifacts in `mlartifacts/`), also when DVC runs the pipeline in a temporary copy.
"""
from __future__ import annotations

import os
import subprocess
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


def _client():
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
    client = _client()
    run = client.create_run(_experiment_id(client, experiment), tags=tags,
                            run_name=os.environ.get("DVC_EXP_NAME") or None)
    log_params(run.info.run_id, params)
    return run.info.run_id


def reopen_or_start(run_id: str | None, experiment: str, params: dict, tags: dict) -> str:
    """The train stage's run, or a new one when that run cannot be found (tracking was down then)."""
    client = _client()
    if run_id:
        try:
            client.get_run(run_id)
            return run_id
        except Exception:  # noqa: BLE001 - any "not found" from any store
            warnings.warn(f"MLflow run {run_id} not found at {tracking_uri()}; starting a new run")
    return start_run(experiment, params, tags)


def log_params(run_id: str, params: dict) -> None:
    from mlflow.entities import Param
    _client().log_batch(run_id, params=[Param(k, str(v)) for k, v in sorted(params.items())])


def log_metrics(run_id: str, metrics: dict, step: int = 0) -> None:
    import time
    from mlflow.entities import Metric
    now = int(time.time() * 1000)
    _client().log_batch(run_id, metrics=[Metric(k, float(v), now, step) for k, v in sorted(metrics.items())
                                         if isinstance(v, (int, float))])


def log_artifacts(run_id: str, paths: list[str | Path], artifact_path: str | None = None) -> None:
    client = _client()
    for p in paths:
        client.log_artifact(run_id, str(p), artifact_path)


def set_tags(run_id: str, tags: dict) -> None:
    client = _client()
    for k, v in tags.items():
        client.set_tag(run_id, k, str(v))


def finish(run_id: str, status: str = "FINISHED") -> None:
    _client().set_terminated(run_id, status)
