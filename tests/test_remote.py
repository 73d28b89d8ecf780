"""The S3 DVC remote against a real S3-compatible server (rclone serve s3) on 127.0.0.1."""
import hashlib
import json
from pathlib import Path

import services
from conftest import run, use_remote


def digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.md5(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_push_clone_pull_and_share_an_experiment(tracked_project, s3_endpoint, tmp_path):
    p = tracked_project
    assert "secret" not in (p / ".dvc/config").read_text()
    use_remote(p, s3_endpoint, services.S3_KEYS)
    origin = tmp_path / "origin.git"
    run(f"git init -q --bare {origin} && git remote add origin {origin} && git push -q origin HEAD:main", p)
    run(["dvc", "push", "--all-branches"], p)  # the committed baseline
    run(["dvc", "exp", "push", "origin", "downsampled"], p)  # the experiment: git refs + its data

    clone = tmp_path / "clone"
    run(f"git clone -q -b main {origin} {clone}", tmp_path)
    use_remote(clone, s3_endpoint, services.S3_KEYS)
    run(["dvc", "pull"], clone)
    assert "up to date" in run(["dvc", "status"], clone).stdout
    assert "didn't change" in run(["dvc", "repro", "--dry"], clone).stdout  # nothing to rerun
    baseline = run("git show HEAD:dvc.lock", p).stdout
    assert (clone / "dvc.lock").read_text() == baseline
    assert digest(clone / "data/raw") == digest(p / "data/raw")  # unchanged by the experiment
    assert (clone / "models/model/config.json").is_file()

    run(["dvc", "exp", "pull", "origin", "downsampled"], clone)
    shown = json.loads(run(["dvc", "exp", "show", "--json"], clone).stdout)
    assert "downsampled" in json.dumps(shown)
    run(["dvc", "exp", "apply", "downsampled"], clone)
    run(["dvc", "checkout"], clone)
    assert "up to date" in run(["dvc", "status"], clone).stdout
    assert digest(clone / "models/model") == digest(p / "models/model")  # byte-identical to the teammate's
    assert json.loads((clone / "metrics/data.json").read_text())["train_counts"]["RESULTS"] == 36


def test_rerun_push_sends_only_what_is_missing(tracked_project, s3_endpoint):
    p = tracked_project
    use_remote(p, s3_endpoint, services.S3_KEYS, url="s3://pubmed-rct/resume-test")
    first = run(["dvc", "push", "download"], p).stdout  # as if a push had stopped after data/raw
    rest = run(["dvc", "push"], p).stdout
    again = run(["dvc", "push"], p).stdout
    n_first, n_rest = (int(s.split(" file")[0].split()[-1]) for s in (first, rest))
    assert n_first > 0 and n_rest > 0
    total = sum(1 for f in (p / ".dvc/cache/files/md5").rglob("*") if f.is_file())
    assert n_first + n_rest <= total and "Everything is up to date" in again


def snapshot(p: Path) -> dict:
    return {"cache": digest(p / ".dvc/cache"), "models": digest(p / "models"), "data": digest(p / "data")}


def test_faults_name_the_cause_and_leave_cache_and_workspace_alone(tracked_project, s3_endpoint):
    p = tracked_project
    before = snapshot(p)
    cases = {
        "wrong credentials": ((services.S3_KEYS[0], "wrong-secret-key-99"), None, s3_endpoint, "403"),
        "missing bucket": (services.S3_KEYS, "s3://no-such-bucket/cache", s3_endpoint, "NoSuchBucket"),
        "unreachable": (services.S3_KEYS, None, f"http://127.0.0.1:{services.free_port()}",
                        "Could not connect to the endpoint URL"),
    }
    for name, (keys, url, endpoint, cause) in cases.items():
        use_remote(p, endpoint, keys, url=url or "s3://pubmed-rct/faults")
        for cmd in (["dvc", "push"], ["dvc", "status", "--cloud"]):  # (pull with a full cache asks nothing)
            r = run(cmd, p, {"AWS_MAX_ATTEMPTS": "1"}, check=False, timeout=300)
            assert r.returncode != 0, (name, cmd)
            assert cause in r.stderr + r.stdout, (name, cmd, r.stderr[-500:])
    assert snapshot(p) == before
