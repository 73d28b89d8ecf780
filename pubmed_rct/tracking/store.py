"""Where runs are kept: the tracking URI (a team's server, or the project's own SQLite file), the one MLflow
client, what a failing store raises, and a check that a server answers before a stage relies on it.

With MLFLOW_TRACKING_URI unset, runs go to a SQLite store at a fixed absolute place in the project
(`mlruns.db`, artifacts in `mlartifacts/`), also when DVC runs the pipeline in a temporary copy.
"""
from __future__ import annotations

import os
from pathlib import Path

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


def experiment_id(client, name: str) -> str:
    """The experiment's id, made where it is new (its artifacts in the project when the store is the embedded one)."""
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    location = None
    if tracking_uri() == embedded_uri():  # (mlflow.set_tracking_uri sets MLFLOW_TRACKING_URI itself)
        location = (project_home() / "mlartifacts").as_uri()
    return client.create_experiment(name, artifact_location=location)


def quick_http_failures() -> None:
    """MLflow's HTTP calls in this process fail in seconds when the server is gone, instead of retrying with
    back-off for ~12 minutes (7 retries); MetricSender does the retrying, off the training thread. Values a
    user set in the environment are kept."""
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
