"""A stage's MLflow run from start to end, owned in one place: `stage_run("train", ...)` and
`stage_run("evaluate", ...)` open it, hand it to the stage, and end it.

train: the checkpoint's run is reopened (a resumed training keeps its run and curve), else a new one starts;
a run an earlier process opened and never closed (killed before its first checkpoint; `marker` names it) ends
KILLED. Metrics go through a MetricSender, so the loop never waits on the server. The run ends FINISHED when
the block ends, KILLED on Ctrl-C or SIGTERM, FAILED on any other error (shielded from a second signal), and
never stays RUNNING.

evaluate: train's run is reopened (a new one where the store does not hold it), and FINISHED at the end;
`register` makes the logged model a new version of the registered model.

A store that cannot be reached (or that refuses) stops a stage that requires tracking with one TrackingError;
otherwise the stage goes on without a run (`run_id` None, logging a no-op) and says so. Only "not found" counts
as absent: any other store error is said.
"""
from __future__ import annotations

import contextlib
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from ..io import read_json, write_json
from .store import TrackingError, check_server, quick_http_failures, store_errors, tracking_uri


@dataclass
class StageRun:
    """The stage's run (run_id None: tracking is off or unreachable, every call a no-op)."""
    run_id: str | None
    sender: object | None = None
    registered: dict = field(default_factory=dict)

    def log(self, metrics: dict, step: int) -> None:
        """Metrics at a step, sent off the calling thread (train) or at once (evaluate)."""
        if self.sender is not None:
            self.sender.log(metrics, step)
        elif self.run_id:
            from .runs import log_metrics
            log_metrics(self.run_id, metrics, step)

    def log_lacking(self, metrics: dict, step: int) -> int:
        """Metrics the run lacks at `step` (train could not send them); how many were sent."""
        from .runs import log_lacking
        return log_lacking(self.run_id, metrics, step) if self.run_id else 0

    def backfill(self, curve: Path, step_key: str, keys: list[str]) -> int:
        """A curve's points (train's CSV file) the run lacks, sent; how many."""
        import csv
        from .runs import backfill
        if not self.run_id:
            return 0
        with open(curve, newline="") as f:
            return backfill(self.run_id, list(csv.DictReader(f)), step_key, keys)

    def artifacts(self, paths: list, as_readme: Path | None = None) -> None:
        """Files logged to the run; `as_readme` also as README.md at its root (the model card)."""
        from .runs import log_artifact_as, log_artifacts
        if self.run_id:
            log_artifacts(self.run_id, paths)
            if as_readme is not None:
                log_artifact_as(self.run_id, as_readme, "README.md")

    def tag(self, tags: dict) -> None:
        from .runs import set_tags
        if self.run_id:
            set_tags(self.run_id, tags)

    def register(self, model_uri: str, name: str, tags: dict) -> str:
        """The logged model as a new version of `name` (the challenger); tagged on the run both ways."""
        from . import registry
        from .runs import set_tags
        version = registry.register(model_uri, name, {"run_id": self.run_id, **tags})
        set_tags(self.run_id, {"registered_model": name, "registered_model_version": version})
        self.registered = {"name": name, "version": version}
        return version


@contextlib.contextmanager
def stage_run(stage: str, settings, params: dict, tags: dict, resume: str | None = None,
              marker: Path | None = None) -> Iterator[StageRun]:
    """The run of `stage` ("train" or "evaluate") for the block; `settings` is params.yaml's tracking section,
    `resume` the run to reopen (train: the checkpoint's; evaluate: train's), `marker` (train) the file naming a
    run opened and not yet checkpointed."""
    if stage not in ("train", "evaluate"):
        raise ValueError(f"stage_run: no stage {stage!r}")
    run = _open(stage, settings, params, tags, resume, marker)
    if run.run_id is None:  # tracking not required, and unreachable: the stage goes on without a run
        yield run
    elif stage == "train":
        with _training(run):
            yield run
    else:
        with _evaluation(run, settings):
            yield run


def _open(stage: str, settings, params: dict, tags: dict, resume: str | None, marker: Path | None) -> StageRun:
    """The stage's run opened; where the store fails: TrackingError if tracking is required, else a StageRun
    without a run, said in one warning."""
    try:
        check_server(tracking_uri())
        if stage == "train":
            return _open_training(settings, params, tags, resume, marker)
        return _open_evaluation(settings, params, tags, resume)
    except store_errors() as e:  # a bug in this code is not "the store is unreachable"
        if settings.required:
            what = "" if stage == "train" else "logging to MLflow failed: "
            raise TrackingError(f"{what}{e}\nTracking is required (params.yaml tracking.required); fix the "
                                "server or run with -S tracking.required=false" + (
                                    "" if stage == "train" else "; the metrics files are written: rerun "
                                    "`dvc repro -f -s evaluate` once the server is back")) from e
        why = str(e)
    print(f"WARNING: MLflow tracking unavailable ({why}); training WITHOUT tracking: nothing will be logged."
          if stage == "train" else f"WARNING: MLflow unavailable ({why}); nothing was logged.", file=sys.stderr)
    return StageRun(None)


def _open_training(settings, params: dict, tags: dict, resumed: str | None, marker: Path | None) -> StageRun:
    from .runs import end_if_running, reopen, start_run
    from .sender import MetricSender
    if marker is not None and marker.is_file() and (stale := read_json(marker).get("run_id")) and stale != resumed:
        end_if_running(stale, "KILLED")
    if resumed and reopen(resumed):
        print(f"train: resuming MLflow run {resumed}")
        run_id = resumed
    else:
        run_id = start_run(settings.experiment, params, tags)
        if marker is not None:
            write_json(marker, {"run_id": run_id})
    quick_http_failures()
    return StageRun(run_id, MetricSender(run_id))  # the training loop never waits on the tracking server


@contextlib.contextmanager
def _training(run: StageRun) -> Iterator[None]:
    from .. import lifetime
    from .runs import end_if_running
    try:
        yield
    except BaseException as e:  # never leave it RUNNING; a resumed run sets it RUNNING again
        with lifetime.shielded():  # a second Ctrl-C or SIGTERM waits for this (at most ~10 s)
            run.sender.close(wait_s=5)  # its thread stops writing first: one writer to the store
            try:
                end_if_running(run.run_id, "KILLED" if isinstance(e, KeyboardInterrupt) else "FAILED")
            except store_errors() as err:  # the original failure is the one to report
                print(f"WARNING: MLflow run {run.run_id} could not be ended ({type(err).__name__}: {err}); the "
                      "next train ends or resumes it", file=sys.stderr)
        raise
    if unsent := run.sender.close(wait_s=15):
        print(f"WARNING: {unsent} metrics could not be sent to {tracking_uri()}; the train stage's CSV files hold "
              "them, and the evaluate stage sends what the run lacks (`dvc repro -f -s evaluate` once the server "
              "is back).", file=sys.stderr)
    end_if_running(run.run_id, "FINISHED")


def _open_evaluation(settings, params: dict, tags: dict, resume: str | None) -> StageRun:
    from .runs import reopen_or_start
    return StageRun(reopen_or_start(resume, settings.experiment, params, tags))


@contextlib.contextmanager
def _evaluation(run: StageRun, settings) -> Iterator[None]:
    from .registry import RegistryError
    from .runs import finish
    try:
        yield
        finish(run.run_id)
        print(f"evaluate: logged to MLflow run {run.run_id} at {tracking_uri()}")
    except (*store_errors(), RegistryError) as e:
        if settings.required:
            raise TrackingError(f"logging to MLflow failed: {e}\nThe metrics files are written; rerun "
                                "`dvc repro -f -s evaluate` once the server is back.") from e
        print(f"WARNING: MLflow unavailable ({e}); nothing was logged.", file=sys.stderr)
