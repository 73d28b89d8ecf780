"""The MLflow Model Registry: each evaluated model is a new version of a registered model (`tracking.
registered_model`), the newest carries the alias `challenger`, the chosen one `champion`; predict and serve
take a model by URI (models:/pubmed-rct@champion, models:/pubmed-rct/3, runs:/<id>/model)."""
from __future__ import annotations

import os
from pathlib import Path

from .store import embedded_uri, mlflow_client, project_home, tracking_uri

CHAMPION, CHALLENGER = "champion", "challenger"
URI_SCHEMES = ("models:/", "runs:/")


class RegistryError(ValueError):
    """A model name, alias, version or metric that cannot be used; the message says what to do."""


def _check_store() -> None:
    """Tracking off (no server set, no embedded store in this project) is said plainly, not as a KeyError."""
    if not os.environ.get("MLFLOW_TRACKING_URI") and not (project_home() / "mlruns.db").is_file():
        raise RegistryError(f"no MLflow store: MLFLOW_TRACKING_URI is unset and {embedded_uri()} does not exist; "
                            "run the pipeline first (`dvc repro`) or set MLFLOW_TRACKING_URI to the team's server")
    from .store import check_server
    check_server(tracking_uri())


def register(model_uri: str, name: str, tags: dict) -> str:
    """A new version of `name` (created on first use) from a logged model, with tags; it becomes the
    challenger. Returns the version number."""
    import mlflow  # (evaluate has checked the store already)
    mlflow.set_tracking_uri(tracking_uri())
    version = mlflow.register_model(model_uri, name, tags={k: str(v) for k, v in tags.items()}).version
    mlflow_client().set_registered_model_alias(name, CHALLENGER, version)
    return str(version)


def _not_found(e: Exception) -> bool:
    return "RESOURCE_DOES_NOT_EXIST" in str(getattr(e, "error_code", "")) or "not found" in str(e).lower() \
        or "does not exist" in str(e).lower()


def version_of(name: str, ref: str | int | None = None):
    """A model version by number, by alias, or (ref None) the newest; RegistryError when there is none."""
    from mlflow.exceptions import MlflowException
    client = mlflow_client()
    try:
        client.get_registered_model(name)
    except MlflowException as e:
        if _not_found(e):
            known = ", ".join(m.name for m in client.search_registered_models()) or "none yet"
            raise RegistryError(f"no registered model {name!r} at {tracking_uri()} (registered: {known}); "
                                "the evaluate stage registers each model it logs") from e
        raise
    try:
        if ref is None:
            versions = client.search_model_versions(f"name = '{name}'")
            if not versions:
                raise RegistryError(f"registered model {name!r} has no versions")
            return max(versions, key=lambda v: int(v.version))
        if str(ref).isdigit():
            return client.get_model_version(name, str(ref))
        return client.get_model_version_by_alias(name, str(ref))
    except MlflowException as e:
        if _not_found(e):
            what = f"version {ref}" if str(ref).isdigit() else f"alias @{ref}"
            raise RegistryError(f"registered model {name!r} has no {what}; `python -m pubmed_rct promote` sets "
                                f"@{CHAMPION}, each evaluate sets @{CHALLENGER}") from e
        raise


def _value(version, metric: str) -> float | None:
    """The version's value of `metric`: its tag, else its run's metric; None when it has neither."""
    value = version.tags.get(metric)
    if value is None and version.run_id:
        value = mlflow_client().get_run(version.run_id).data.metrics.get(metric)
    return None if value is None else float(value)


def _no_metric(version, metric: str) -> RegistryError:
    return RegistryError(f"version {version.version} of {version.name!r} has no {metric}; evaluate it "
                         "(`dvc repro -f -s evaluate`) or promote it deliberately with --version N --force")


def _promotion_lock(name: str):
    """One promotion at a time on this machine (read, compare and move the alias as one step): the project's one
    lock (lifetime.exclusive), waited for."""
    from ..lifetime import exclusive
    return exclusive(project_home() / f".promote-{name}.lock", f"a promotion of {name}", wait_s=600)


def best_version(name: str, metric: str):
    """The version with the highest `metric` (ties: the newest); RegistryError when none has it."""
    scored = [(value, int(v.version), v) for v in mlflow_client().search_model_versions(f"name = '{name}'")
              if (value := _value(v, metric)) is not None]
    if not scored:
        raise RegistryError(f"no version of {name!r} has {metric}; evaluate one first")
    return max(scored, key=lambda t: t[:2])[2]


def promote(name: str, metric: str, version: str | None = None, force: bool = False,
            best: bool = False) -> tuple[bool, str]:
    """Move @champion to `version` (default: the newest; with best, the best-scoring) when its metric beats
    the champion's, or, with force, in any case. Returns (promoted, a side-by-side comparison for the user)."""
    _check_store()
    with _promotion_lock(name):
        candidate = best_version(name, metric) if best else version_of(name, version)
        champion = _champion(name)
        cand_value = _value(candidate, metric)
        champ_value = _value(champion, metric) if champion else None
        if not force:  # refused, saying why, when a metric is missing
            if cand_value is None:
                raise _no_metric(candidate, metric)
            if champion and champ_value is None:
                raise _no_metric(champion, metric)
        rows = [("", f"candidate v{candidate.version}", f"@{CHAMPION} v{champion.version}" if champion else "-")]
        for key in dict.fromkeys((metric, "test_micro_f1", "test_macro_f1", "context", "dvc.exp_name", "run_id")):
            rows.append((key, _show(cand_value if key == metric else candidate.tags.get(key)),
                         _show(champ_value if key == metric else champion.tags.get(key)) if champion else "-"))
        table = "\n".join(f"{a:16s} {b:>34s} {c:>34s}" for a, b, c in rows)
        if champion and champion.version == candidate.version:
            return False, f"{table}\nversion {candidate.version} is already @{CHAMPION}"
        better = champion is None or (cand_value is not None and champ_value is not None and cand_value > champ_value)
        if not (better or force):
            return False, (f"{table}\nnot promoted: {metric} {cand_value:.4f} does not beat @{CHAMPION} "
                           f"v{champion.version} ({champ_value:.4f}); use --version {candidate.version} --force "
                           "to choose it anyway")
        mlflow_client().set_registered_model_alias(name, CHAMPION, candidate.version)
        why = (f"{metric} {cand_value:.4f} > {champ_value:.4f}" if champion and better else
               f"{metric} {_show(cand_value)}, the first champion" if better else "forced")
        return True, f"{table}\npromoted: {name} v{candidate.version} is now @{CHAMPION} ({why})"


def _champion(name: str):
    try:
        return version_of(name, CHAMPION)
    except RegistryError:
        return None


def _show(value) -> str:
    if value is None:
        return "-"
    try:
        return f"{float(value):.4f}"
    except ValueError:
        return str(value)[:24]


def is_uri(model: str) -> bool:
    return str(model).startswith(URI_SCHEMES)


def parse_uri(uri: str) -> tuple[str, str | None]:
    """(name, alias or version number, None for the newest) of models:/name@alias or models:/name[/N]."""
    ref = uri[len("models:/"):]
    name, sep, alias = ref.partition("@")
    if sep:
        return name, alias
    name, _, number = ref.partition("/")
    return name, number or None


def version_of_uri(uri: str) -> str | None:
    """The registry version a model URI names (models:/...), the URI itself for runs:/..., else None."""
    if uri.startswith("models:/"):
        return str(version_of(*parse_uri(uri)).version)
    return uri if uri.startswith("runs:/") else None


def local_folder(model: str, run_id: str | None = None) -> Path:
    """The local model folder a command runs: --model as a folder, or a model URI (models:/name@alias,
    models:/name/N, runs:/<id>/model) or --run-id, downloaded through MLflow."""
    if run_id:
        return resolve(f"runs:/{run_id}/model")
    if is_uri(model):
        return resolve(model)
    return Path(model)


def resolve(model: str) -> Path:
    """A local model folder for a model URI (models:/name@alias, models:/name/N, runs:/<id>/model),
    downloaded through MLflow: the folder inside the logged pyfunc that holds config.json."""
    import mlflow
    from mlflow.exceptions import MlflowException
    _check_store()
    if model.startswith("models:/"):
        version_of(*parse_uri(model))  # a name, alias or version that does not exist is said plainly
    try:
        local = Path(mlflow.artifacts.download_artifacts(artifact_uri=model))
    except MlflowException as e:
        raise RegistryError(f"{model}: {e.message if hasattr(e, 'message') else e}") from e
    found = sorted(p.parent for p in local.rglob("config.json"))
    if not found:
        raise RegistryError(f"{model}: no model folder (config.json) in it; is it a model logged by evaluate?")
    return found[0]
