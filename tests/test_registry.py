"""The Model Registry through `python -m pubmed_rct promote` and model URIs, on a SQLite store (the
embedded default's kind); the pipeline's own registration runs in test_tracking.py against the server."""
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT, run


@pytest.fixture
def store(tmp_path, monkeypatch):
    """A SQLite store with registered model `pubmed-rct`: v1 (macro 0.50, @champion), v2 (0.70), v3 (0.60),
    v4 without metrics; each version backed by a real run."""
    from mlflow import MlflowClient
    uri = f"sqlite:///{tmp_path / 'mlruns.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    c = MlflowClient(tracking_uri=uri)
    exp = c.create_experiment("pubmed-rct-classification", artifact_location=(tmp_path / "art").as_uri())
    c.create_registered_model("pubmed-rct")
    for macro in (0.5, 0.7, 0.6, None):
        r = c.create_run(exp)
        tags = {"run_id": r.info.run_id, "context": "none"}
        if macro is not None:
            tags.update(test_macro_f1=str(macro), test_micro_f1=str(macro + 0.2))
        c.create_model_version("pubmed-rct", source=f"runs:/{r.info.run_id}/model", run_id=r.info.run_id, tags=tags)
    c.set_registered_model_alias("pubmed-rct", "champion", "1")
    return tmp_path, uri, c


def promote(cwd, uri, *args, check=True):
    return run([sys.executable, "-m", "pubmed_rct", "promote", *args], cwd, {"MLFLOW_TRACKING_URI": uri,
                                                                           "PYTHONPATH": str(ROOT)}, check=check)


def champion(c):
    return str(c.get_model_version_by_alias("pubmed-rct", "champion").version)


def test_promote_moves_champion_to_a_better_version_and_shows_both(store):
    cwd, uri, c = store
    r = promote(cwd, uri, "--version", "2")
    assert champion(c) == "2"
    assert "promoted: pubmed-rct v2 is now @champion (test_macro_f1 0.7000 > 0.5000)" in r.stdout
    assert "candidate v2" in r.stdout and "@champion v1" in r.stdout and "0.9000" in r.stdout  # micro side by side


def test_promote_keeps_a_better_champion_unless_forced(store):
    cwd, uri, c = store
    promote(cwd, uri, "--version", "2")
    r = promote(cwd, uri, "--version", "3")
    assert champion(c) == "2" and r.returncode == 0
    assert "not promoted: test_macro_f1 0.6000 does not beat @champion v2 (0.7000)" in r.stdout
    promote(cwd, uri, "--version", "3", "--force")
    assert champion(c) == "3"


def test_promote_refuses_a_version_without_the_metric(store):
    cwd, uri, c = store
    r = promote(cwd, uri, check=False)  # the newest, v4, has no metrics
    assert r.returncode == 2 and champion(c) == "1"
    assert "error: version 4 of 'pubmed-rct' has no test_macro_f1" in r.stderr and "Traceback" not in r.stderr
    promote(cwd, uri, "--version", "4", "--force")
    assert champion(c) == "4"


@pytest.mark.parametrize("args, message", [
    (["--name", "nope"], "no registered model 'nope'"),
    (["--version", "9"], "has no version 9"),
    (["--force"], "--force needs --version N"),
])
def test_promote_errors_name_what_is_wrong(store, args, message):
    cwd, uri, _ = store
    r = promote(cwd, uri, *args, check=False)
    assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr


def test_two_promotions_at_once_leave_the_best_as_the_one_champion(store):
    cwd, uri, c = store
    import time
    env = {"MLFLOW_TRACKING_URI": uri, "PYTHONPATH": str(ROOT), "PATH": f"{ROOT / '.venv/bin'}:/usr/bin:/bin"}
    delayed = [sys.executable, str(ROOT / "tests/run_with.py"), "promote-delay=4"]  # both read @champion first
    for first, second in (("2", "3"), ("3", "2")):
        c.set_registered_model_alias("pubmed-rct", "champion", "1")
        procs = []
        lock = Path(cwd) / ".promote-pubmed-rct.lock"
        lock.unlink(missing_ok=True)
        for v in (first, second):
            procs.append(subprocess.Popen([*delayed, "-m", "pubmed_rct", "promote", "--version", v], cwd=cwd,
                                          env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
            while len(procs) == 1 and procs[0].poll() is None and not (lock.exists() and lock.read_text().strip()):
                time.sleep(0.05)  # the first holds the lock (its pid in the file) before the second starts
        outs = [p.communicate(timeout=300) for p in procs]
        assert [p.returncode for p in procs] == [0, 0], outs
        assert champion(c) == "2"  # v3 (0.6) never overwrites v2 (0.7), whichever ran first
        holders = [v for v in "1234" if "champion" in c.get_model_version("pubmed-rct", v).aliases]
        assert holders == ["2"]


@pytest.mark.parametrize("model, message", [
    ("models:/nope@champion", "no registered model 'nope'"),
    ("models:/pubmed-rct@staging", "has no alias @staging"),
    ("models:/pubmed-rct/9", "has no version 9"),
])
def test_predict_with_an_unknown_model_uri_says_so(store, model, message):
    cwd, uri, _ = store
    r = run([sys.executable, "-m", "pubmed_rct", "predict", "--model", model, "Some text."], cwd,
            {"MLFLOW_TRACKING_URI": uri, "PYTHONPATH": str(ROOT)}, check=False)
    assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr


def test_a_model_uri_with_tracking_off_is_refused(tmp_path):
    r = run([sys.executable, "-m", "pubmed_rct", "serve", "--model", "models:/pubmed-rct@champion"], tmp_path,
            {"MLFLOW_TRACKING_URI": "", "PYTHONPATH": str(ROOT)}, check=False)
    assert r.returncode == 2 and "error: no MLflow store: MLFLOW_TRACKING_URI is unset" in r.stderr


def test_promote_best_picks_the_best_scoring_version(store):
    cwd, uri, c = store
    r = promote(cwd, uri, "--best")
    assert champion(c) == "2" and "candidate v2" in r.stdout
    r = promote(cwd, uri, "--best")
    assert "version 2 is already @champion" in r.stdout
    r = promote(cwd, uri, "--best", "--version", "3", check=False)
    assert r.returncode == 2 and "give one" in r.stderr
