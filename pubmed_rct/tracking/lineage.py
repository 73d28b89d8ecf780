"""Lineage both ways: the tags that lead from an MLflow run back to git and DVC (commit, experiment, the
dvc.lock hashes of a stage's inputs, the dataset)."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import yaml

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
