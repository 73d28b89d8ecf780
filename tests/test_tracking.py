"""MLflow tracking against a real `mlflow server` on 127.0.0.1, read back through MlflowClient."""
import json
import os
import sys

import pandas as pd
import pytest
import yaml

import services
from conftest import ROOT, make_project, run, set_params

PARAMS = {"model", "learning_rate", "batch_size", "num_epochs", "max_length", "use_downsampling", "seed",
          "data_source", "context"}
METRICS = {"train_loss", "train_runtime", "train_samples_per_second", "val_macro_f1", "val_micro_f1",
           "test_macro_f1", "test_micro_f1"}


def client(uri):
    from mlflow import MlflowClient
    return MlflowClient(tracking_uri=uri)


def test_experiment_run_holds_params_metrics_lineage_artifacts_and_model(tracked_project, mlflow_uri):
    p = tracked_project
    train = json.loads((p / "metrics/train.json").read_text())
    assert train["mlflow_tracking_uri"] == mlflow_uri
    c = client(mlflow_uri)
    r = c.get_run(train["mlflow_run_id"])
    assert c.get_experiment(r.info.experiment_id).name == "pubmed-rct-classification"
    assert r.info.status == "FINISHED"
    assert PARAMS <= set(r.data.params) and r.data.params["use_downsampling"] == "True"
    assert r.data.params["learning_rate"] == "0.005" and r.data.params["batch_size"] == "8"
    assert (r.data.params["world_size"], r.data.params["per_device_batch_size"], r.data.params["global_batch_size"],
            r.data.params["learning_rate_rule"]) == ("1", "8", "8", "unchanged (global batch)")
    assert METRICS <= set(r.data.metrics)
    ev = json.loads((p / "metrics/eval.json").read_text())
    assert r.data.metrics["test_micro_f1"] == pytest.approx(ev["test_micro_f1"])
    assert len(c.get_metric_history(r.info.run_id, "train_loss")) > 3  # a curve, not one value
    assert len(c.get_metric_history(r.info.run_id, "epoch_val_macro_f1")) == 10  # one per epoch

    # lineage: git commit, DVC experiment, the data hashes of dvc.lock, the dataset
    tags = r.data.tags
    head = run("git rev-parse HEAD", p).stdout.strip()
    assert tags["mlflow.source.git.commit"] == head and tags["git.dirty"] == "true"  # params.yaml changed by -S
    assert tags["dvc.exp_name"] == "downsampled"
    lock = yaml.safe_load((p / "dvc.lock").read_text())
    tokenized = next(o for o in lock["stages"]["tokenize"]["outs"] if o["path"] == "data/tokenized")
    assert tags["dvc.dep.data/tokenized"] == tokenized["md5"]
    model_out = next(o for o in lock["stages"]["train"]["outs"] if o["path"] == "models/model")
    assert tags["dvc.dep.models/model"] == model_out["md5"]
    assert tags["dataset"].endswith("tests/fixtures/rct")

    names = {a.path for a in c.list_artifacts(r.info.run_id)}
    assert {"classification_report.txt", "confusion_matrix.png"} <= names
    report = c.download_artifacts(r.info.run_id, "classification_report.txt")
    assert open(report).read() == (p / "metrics/classification_report.txt").read_text()

    # the model loads back through MLflow's own API and labels raw sentences
    import mlflow
    mlflow.set_tracking_uri(mlflow_uri)
    model = mlflow.pyfunc.load_model(f"runs:/{r.info.run_id}/model")
    out = model.predict(pd.DataFrame({"text": ["Patients were randomly assigned to aspirin or control for 12 weeks .",
                                               "aspirin is safe and effective for asthma ."]}))
    assert list(out["label"]) == ["METHODS", "CONCLUSIONS"]
    assert out["probability"].between(0, 1).all()

    # and the predict command labels an abstract with the model of that run (no local models/ folder)
    r2 = run([sys.executable, "-m", "pubmed_rct", "predict", "--run-id", r.info.run_id, "--model", "/nonexistent",
              "--format", "json", "Patients were randomly assigned to aspirin or control for 12 weeks. "
              "Aspirin is safe and effective for asthma."], ROOT, {"MLFLOW_TRACKING_URI": mlflow_uri})
    assert [s["label"] for s in json.loads(r2.stdout)["sentences"]] == ["METHODS", "CONCLUSIONS"]


def test_dvc_side_shows_the_run_id_and_the_baseline_run_is_separate(tracked_project, mlflow_uri):
    p = tracked_project
    shown = json.loads(run(["dvc", "metrics", "show", "--json"], p).stdout)
    run_id = json.loads((p / "metrics/train.json").read_text())["mlflow_run_id"]
    assert run_id in json.dumps(shown) and mlflow_uri in json.dumps(shown)
    assert run_id in run(["dvc", "exp", "show", "--no-pager", "--json"], p).stdout
    baseline = json.loads(run("git show HEAD:metrics/train.json", p).stdout)["mlflow_run_id"]
    assert baseline and baseline != run_id
    b = client(mlflow_uri).get_run(baseline)
    assert b.data.params["use_downsampling"] == "False" and "dvc.exp_name" not in b.data.tags
    assert b.data.tags["git.dirty"] == "false"


def test_embedded_default_is_sqlite_in_the_project(tmp_path, tiny_bert):
    p = make_project(tmp_path / "project", tiny_bert, **{"train.num_epochs": 1})
    run(["dvc", "repro"], p, {"MLFLOW_TRACKING_URI": ""})
    train = json.loads((p / "metrics/train.json").read_text())
    assert train["mlflow_tracking_uri"] == f"sqlite:///{p / 'mlruns.db'}"
    r = client(train["mlflow_tracking_uri"]).get_run(train["mlflow_run_id"])
    assert "test_micro_f1" in r.data.metrics
    assert (p / "mlartifacts").is_dir() and not (p / "mlruns").exists()


@pytest.fixture
def tokenized_project(tmp_path, tiny_bert):
    p = make_project(tmp_path / "project", tiny_bert, **{"train.num_epochs": 1})
    run(["dvc", "repro", "tokenize"], p)
    return p


def test_unreachable_server_stops_training_before_it_starts(tokenized_project):
    p, uri = tokenized_project, f"http://127.0.0.1:{services.free_port()}"
    r = run(["python", "stages/train.py"], p, {"MLFLOW_TRACKING_URI": uri}, check=False)
    assert r.returncode != 0
    assert f"MLflow tracking server {uri} is unreachable" in r.stderr and "tracking.required" in r.stderr
    assert "Traceback" not in r.stderr and not (p / "models/model").exists()


def test_optional_tracking_trains_and_says_nothing_was_logged(tokenized_project):
    p, uri = tokenized_project, f"http://127.0.0.1:{services.free_port()}"
    run(["dvc", "exp", "run", "-S", "tracking.required=false", "train"], p, {"MLFLOW_TRACKING_URI": uri})
    train = json.loads((p / "metrics/train.json").read_text())
    assert train["mlflow_run_id"] == "" and (p / "models/model/config.json").is_file()


def test_wrong_password_is_refused(tokenized_project, tmp_path):
    p = tokenized_project
    with services.mlflow_server(tmp_path / "auth-server", auth=True) as uri:
        wrong = {"MLFLOW_TRACKING_URI": uri, "MLFLOW_TRACKING_USERNAME": "admin", "MLFLOW_TRACKING_PASSWORD": "nope"}
        r = run(["python", "stages/train.py"], p, wrong, check=False)
        assert r.returncode != 0 and "refused the credentials (HTTP 401)" in r.stderr
        assert not (p / "models/model").exists()
        import os
        os.environ.update({"MLFLOW_TRACKING_USERNAME": "admin", "MLFLOW_TRACKING_PASSWORD": services.ADMIN_PASSWORD})
        try:
            assert client(uri).create_experiment("auth-ok")  # the right password is let in
        finally:
            del os.environ["MLFLOW_TRACKING_USERNAME"], os.environ["MLFLOW_TRACKING_PASSWORD"]


@pytest.mark.parametrize("hosts", ["*", "mlflow.example.org,", "a.example.org, ,b.example.org", "*.example.org"])
def test_tracking_server_off_loopback_refuses_wildcard_or_empty_allowed_hosts(tmp_path, hosts):
    r = run([str(ROOT / "bin/tracking-server")], tmp_path, {"MLFLOW_HOME": str(tmp_path), "MLFLOW_HOST": "0.0.0.0",
                                                           "MLFLOW_ALLOWED_HOSTS": hosts}, check=False, timeout=60)
    assert r.returncode == 2 and "holds a wildcard or an empty entry" in r.stderr
    assert not (tmp_path / "mlflow.db").exists()  # refused before anything started


def curve_of(project):
    import csv
    with open(project / "metrics/train_loss.csv", newline="") as f:
        return [(int(r["step"]), float(r["elapsed_s"])) for r in csv.DictReader(f)]


def median_step_s(points):
    """Median seconds between consecutive logged steps, from (step, seconds) pairs."""
    import statistics
    points = sorted(dict(sorted(points, reverse=True)).items())  # one time a step (its first)
    return statistics.median((t2 - t1) / (s2 - s1) for (s1, t1), (s2, t2) in zip(points, points[1:]))


def trained_steps(log) -> int:
    """The last step the train stage's progress bar shows in its log (0 before the first)."""
    import re
    found = re.findall(r"(\d+)/\d+ \[", log.read_text(errors="replace"))
    return int(found[-1]) if found else 0


def wait_until(condition, seconds: float = 300) -> bool:
    import time
    deadline = time.time() + seconds
    while time.time() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return False


def test_a_tracking_outage_costs_no_training_time_and_the_curve_is_backfilled(tmp_path, tiny_bert):
    import shutil
    import subprocess
    import time
    p = make_project(tmp_path / "project", tiny_bert, **{"train.num_epochs": 20, "train.batch_size": 2,
                                                           "train.log_every_steps": 1})
    run(["dvc", "repro", "tokenize"], p)

    # without tracking at all: the reference speed
    set_params(p, **{"tracking.required": False})
    dead = f"http://127.0.0.1:{services.free_port()}"
    run(["python", "stages/train.py"], p, {"MLFLOW_TRACKING_URI": dead})
    reference = median_step_s(curve_of(p))
    set_params(p, **{"tracking.required": True})
    shutil.rmtree(p / "checkpoints", ignore_errors=True)

    # with a real server that is killed after 2 s of training and restarted 10 s later, on the same store
    port, home = services.free_port(), tmp_path / "server"
    uri = f"http://127.0.0.1:{port}"
    env = {"MLFLOW_HOME": str(home), "MLFLOW_PORT": str(port), "MLFLOW_AUTH": "0",
           "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    server = [str(ROOT / "bin" / "tracking-server")]
    full_env = {**os.environ, "PATH": f"{services.VENV_BIN}:{os.environ['PATH']}",
                "MLFLOW_TRACKING_URI": uri}
    with services.service(server, f"{uri}/health", home, env):
        log = open(tmp_path / "train.log", "w+")  # a file, not a pipe nobody reads while it fills
        train = subprocess.Popen(["python", "stages/train.py"], cwd=p, env=full_env, stdout=log, stderr=log)
        c = client(uri)
        deadline = time.time() + 300
        while time.time() < deadline and train.poll() is None:
            exp = c.get_experiment_by_name("pubmed-rct-classification")
            runs = c.search_runs([exp.experiment_id]) if exp else []
            if runs and len(c.get_metric_history(runs[0].info.run_id, "train_loss")) >= 20:
                break
            time.sleep(0.5)
        assert train.poll() is None, "training ended before the outage began"
        assert wait_until(lambda: trained_steps(tmp_path / "train.log") >= 60)  # well into training
    killed, at_kill = time.time(), trained_steps(tmp_path / "train.log")
    # the outage: until the sender has met it and the loop has gone on for 150 steps without the server, and for
    # at least 3 s (a fast machine trains 150 steps of the tiny model within the 1 s margin timed out below)
    assert wait_until(lambda: "WARNING: MLflow logging failed" in (tmp_path / "train.log").read_text() and
                      trained_steps(tmp_path / "train.log") >= at_kill + 150 and time.time() >= killed + 3)
    back = time.time()
    with services.service(server, f"{uri}/health", home, env):
        train.wait(timeout=900)
        err = (tmp_path / "train.log").read_text()
        assert train.returncode == 0, err[-3000:]
        assert "WARNING: MLflow logging failed" in err and "MLflow logging resumed" in err
        run(["python", "stages/evaluate.py"], p, {"MLFLOW_TRACKING_URI": uri})
        run_id = json.loads((p / "metrics/train.json").read_text())["mlflow_run_id"]
        history = c.get_metric_history(run_id, "train_loss")
        epochs = c.get_metric_history(run_id, "epoch_val_macro_f1")
        status = c.get_run(run_id).info.status

    curve = curve_of(p)
    from collections import Counter
    extra = Counter(m.step for m in history) - Counter(step for step, _ in curve)
    assert not Counter(step for step, _ in curve) - Counter(m.step for m in history)  # the whole curve is there,
    assert extra == Counter({json.loads((p / "metrics/train.json").read_text())["train_steps"]: 1})  # each step
    # once, besides the final train_loss (the mean over training) at the last step: sent by train, not again
    assert sorted(m.step for m in epochs) == list(range(1, 21)) and status == "FINISHED"
    # the steps trained while the server was down, timed by their metrics' timestamps
    outage = [(m.step, m.timestamp / 1000) for m in history if killed + 1 < m.timestamp / 1000 < back]
    during = median_step_s(outage)
    before = [(m.step, m.timestamp / 1000) for m in history if m.timestamp / 1000 < killed]
    after = [(m.step, m.timestamp / 1000) for m in history if m.timestamp / 1000 > back + 1]
    print(f"median s/step: no tracking {reference:.4f}; tracked, before the outage {median_step_s(before):.4f}, "
          f"during it {during:.4f} ({len(outage)} steps in {back - killed - 1:.1f} s), after it {median_step_s(after):.4f}")
    assert len(outage) >= 0.3 * (back - killed - 1) / reference  # the loop went on
    assert during <= 2 * reference + 0.005  # within noise of training without tracking (a shared CI machine)


def test_each_evaluated_model_is_a_registered_version_with_its_lineage_and_card(tracked_project, mlflow_uri,
                                                                                monkeypatch):
    p, c = tracked_project, client(mlflow_uri)
    versions = sorted(c.search_model_versions("name = 'pubmed-rct'"), key=lambda v: int(v.version))
    assert [v.version for v in versions] == ["1", "2"]  # the baseline, then the experiment `downsampled`
    v2 = versions[1]
    train = json.loads((p / "metrics/train.json").read_text())
    ev = json.loads((p / "metrics/eval.json").read_text())
    lock = yaml.safe_load((p / "dvc.lock").read_text())
    model_out = next(o for o in lock["stages"]["train"]["outs"] if o["path"] == "models/model")
    assert v2.run_id == train["mlflow_run_id"] and v2.tags["run_id"] == train["mlflow_run_id"]
    assert v2.tags["dvc.exp_name"] == "downsampled" and versions[0].tags["dvc.exp_name"] == ""
    assert v2.tags["git.commit"] == run("git rev-parse HEAD", p).stdout.strip()
    assert v2.tags["dvc.dep.models/model"] == model_out["md5"] and v2.tags["dvc.dep.data/tokenized"]
    assert v2.tags["data_source"].endswith("tests/fixtures/rct") and v2.tags["context"] == "none"
    assert float(v2.tags["test_macro_f1"]) == pytest.approx(ev["test_macro_f1"])
    assert float(v2.tags["test_micro_f1"]) == pytest.approx(ev["test_micro_f1"])
    assert c.get_model_version_by_alias("pubmed-rct", "challenger").version == "2"
    assert c.get_run(v2.run_id).data.tags["registered_model_version"] == "2"

    # the model card, from what was measured: in metrics/, at the run's root, and in the model's folder
    card = (p / "metrics/model_card.md").read_text()
    assert f"| test_macro_f1 | {ev['test_macro_f1']:.4f} |" in card and f"`{train['mlflow_run_id']}`" in card
    assert "| DVC experiment | `downsampled` |" in card and f"`{model_out['md5']}`" in card
    assert "| use_downsampling | `True` |" in card and "## Intended use and limits" in card
    for label in ("BACKGROUND", "CONCLUSIONS", "METHODS", "OBJECTIVE", "RESULTS"):
        assert f"| {label} | {ev['test_f1_' + label]:.4f} |" in card
    assert open(c.download_artifacts(v2.run_id, "README.md")).read() == card
    from pubmed_rct.tracking.registry import resolve
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_uri)
    folder = resolve("models:/pubmed-rct/2")
    assert (folder / "README.md").read_text() == card and (folder / "config.json").is_file()

    # what `mlflow models serve` needs: pinned requirements, a signature, an input example
    import mlflow
    info = mlflow.models.get_model_info("models:/pubmed-rct/2")
    assert info.signature.inputs.input_names() == ["text"]
    assert "label" in info.signature.outputs.input_names()
    reqs = open(mlflow.pyfunc.get_model_dependencies("models:/pubmed-rct/2")).read().split()
    import onnxruntime
    import torch
    assert f"torch=={torch.__version__}" in reqs and all("==" in r for r in reqs if not r.startswith("-"))
    # #24: the model carries its int8 ONNX file, and serving it needs onnxruntime
    assert (folder / "model.int8.onnx").is_file() and f"onnxruntime=={onnxruntime.__version__}" in reqs


def not_json(constant: str):
    raise ValueError(f"{constant} is not JSON")  # Python's json takes NaN and Infinity; JSON.parse does not


def test_promote_then_predict_and_mlflow_models_serve_by_alias(tracked_project, mlflow_uri, tmp_path):
    import urllib.request
    p, env = tracked_project, {"MLFLOW_TRACKING_URI": mlflow_uri}
    run([sys.executable, "-m", "pubmed_rct", "promote", "--version", "1"], p, env)
    r = run([sys.executable, "-m", "pubmed_rct", "promote"], p, env)  # the newest, v2, against v1
    c = client(mlflow_uri)
    assert "candidate v2" in r.stdout and "@champion v1" in r.stdout
    expected = "2" if "v2 is now @champion" in r.stdout else "1"
    assert c.get_model_version_by_alias("pubmed-rct", "champion").version == expected
    abstract = ("Patients were randomly assigned to aspirin or control for 12 weeks. "
                "Aspirin is safe and effective for asthma.")
    out = run([sys.executable, "-m", "pubmed_rct", "predict", "--model", "models:/pubmed-rct@champion", "--format",
               "json", abstract], ROOT, env)
    assert [s["label"] for s in json.loads(out.stdout)["sentences"]] == ["METHODS", "CONCLUSIONS"]

    port = services.free_port()
    cmd = ["mlflow", "models", "serve", "-m", "models:/pubmed-rct@champion", "--env-manager", "local",
           "--host", "127.0.0.1", "--port", str(port)]
    with services.service(cmd, f"http://127.0.0.1:{port}/ping", tmp_path / "serve", env):
        body = json.dumps({"dataframe_records": [{"text": abstract}, {"text": "   "}]}).encode()
        req = urllib.request.Request(f"http://127.0.0.1:{port}/invocations", body,
                                     {"Content-Type": "application/json"})
        answer = json.loads(urllib.request.urlopen(req, timeout=120).read(), parse_constant=not_json)
        # #28 D3: bad rows beside a good one gave a bare NaN (probability), so no JSON parser took the answer
        body = json.dumps({"dataframe_records": [{"text": 5}, {"text": None}, {"text": ""}, {"text": abstract}]})
        req = urllib.request.Request(f"http://127.0.0.1:{port}/invocations", body.encode(),
                                     {"Content-Type": "application/json"})
        mixed = json.loads(urllib.request.urlopen(req, timeout=120).read(), parse_constant=not_json)["predictions"]
        assert [row["input"] for row in mixed] == [0, 1, 2, 3, 3]
        assert all(row["probability"] is None and row["error"].startswith(f"row {row['input']}: ")
                   for row in mixed[:3])
        assert [row["label"] for row in mixed[3:]] == ["METHODS", "CONCLUSIONS"] and mixed[3]["error"] is None
        # a lone surrogate: MLflow's scoring server itself answers a JSON 400 naming it
        req = urllib.request.Request(f"http://127.0.0.1:{port}/invocations", json.dumps(
            {"dataframe_records": [{"text": "a \ud800 b"}]}).encode(), {"Content-Type": "application/json"})
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(req, timeout=120)
        assert refused.value.code == 400 and "surrogates not allowed" in json.loads(refused.value.read())["message"]
    rows, bad = answer["predictions"][:2], answer["predictions"][2:]
    import mlflow
    before = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(mlflow_uri)  # the model the server loaded, through the same pyfunc: ONNX Runtime (#24)
    try:
        served = mlflow.pyfunc.load_model("models:/pubmed-rct@champion").unwrap_python_model().labeler
    finally:
        mlflow.set_tracking_uri(before)
    assert served.backend == "onnx" and served.model.precision == "int8"
    assert [row["label"] for row in rows] == ["METHODS", "CONCLUSIONS"] and [row["input"] for row in rows] == [0, 0]
    # #22 item 3: a row that cannot be labelled is named in that row, the others are labelled
    assert len(bad) == 1 and bad[0]["input"] == 1 and "row 1: the text is empty" in bad[0]["error"]
    assert rows[0]["sentence"].startswith("Patients were randomly") and 0 < rows[0]["probability"] <= 1


def test_the_metric_sender_keeps_a_bounded_queue_and_gives_up_at_close(monkeypatch, capfd):
    from pubmed_rct.tracking.sender import MetricSender
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{services.free_port()}")  # nobody listens
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    sender = MetricSender("no-such-run", max_pending=5, retry_s=(0.2, 0.4))
    for step in range(10):
        sender.log({"train_loss": 1.0 / (step + 1)}, step)
    assert sender.pending() == 5 and sender.dropped == 5  # the oldest went; the train stage's files keep them
    assert sender.close(wait_s=1.5) == 5 and not sender._thread.is_alive()  # it gave up: close never hangs
    assert sender.failures >= 1 and sender.sent == 0
    assert "WARNING: MLflow logging failed" in capfd.readouterr().err


@pytest.mark.starts("mlflow server")
def test_tracking_server_on_another_loopback_address_accepts_its_own_host(tmp_path):
    """#22 row 34: bound to 127.0.0.2 every API call answered 403 "Invalid Host header"."""
    import urllib.request
    port = services.free_port()
    uri = f"http://127.0.0.2:{port}"
    env = {"MLFLOW_HOME": str(tmp_path), "MLFLOW_HOST": "127.0.0.2", "MLFLOW_PORT": str(port)}
    with services.service([str(ROOT / "bin" / "tracking-server")], f"{uri}/health", tmp_path, env):
        with urllib.request.urlopen(f"{uri}/api/2.0/mlflow/experiments/search?max_results=1", timeout=30) as r:
            assert r.status == 200 and "experiments" in json.loads(r.read())


@pytest.mark.parametrize("host", ["127.attacker.example", "localhost.attacker.example", "127.0.0.1.nip.io"])
def test_tracking_server_takes_only_literal_loopback_addresses_as_loopback(tmp_path, host):
    """#22 row 35: `127.*` took the host name 127.attacker.example for loopback: no auth, no allowed-hosts check."""
    r = run([str(ROOT / "bin/tracking-server")], tmp_path, {"MLFLOW_HOME": str(tmp_path), "MLFLOW_HOST": host},
            check=False, timeout=60)
    assert r.returncode == 2 and f"binding {host} exposes the server; set MLFLOW_ALLOWED_HOSTS" in r.stderr
    assert not (tmp_path / "mlflow.db").exists()


def test_evaluate_names_an_unreachable_store_but_lets_a_bug_surface_as_itself(monkeypatch, capsys):
    """#25: evaluate's MLflow guard catches what a failing store raises, not every Exception."""
    import importlib.util
    import requests
    from pubmed_rct.tracking import stage_run, store
    spec = importlib.util.spec_from_file_location("evaluate_stage", ROOT / "stages/evaluate.py")
    evaluate = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(evaluate)
    cards = []
    from pubmed_rct.params import Tracking
    log = lambda required: evaluate.log_to_mlflow(  # noqa: E731
        Tracking(experiment="e", required=required, registered_model="", promote_metric="m"), {"source": "x"}, {},
        {}, {}, cards.append, {})

    def down(uri):
        raise requests.ConnectionError("connection refused")
    monkeypatch.setattr(stage_run, "check_server", down)
    with pytest.raises(store.TrackingError, match="logging to MLflow failed: connection refused"):
        log(True)
    log(False)
    assert "WARNING: MLflow unavailable (connection refused); nothing was logged." in capsys.readouterr().err
    assert cards == [None, None]  # the card is written either way

    def bug(uri):
        raise TypeError("a bug in this project")
    monkeypatch.setattr(stage_run, "check_server", bug)
    with pytest.raises(TypeError, match="a bug in this project"):
        log(False)


def test_evaluate_sends_of_trains_final_metrics_only_what_the_run_lacks(tmp_path, monkeypatch):
    """#25: train's final metrics went to the run twice (train, then evaluate); now evaluate sends a value only
    where the run lacks it, and a curve's point of the same key at that step is not taken for it."""
    from pubmed_rct.tracking import runs, store
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlruns.db'}")
    c = store.mlflow_client()
    run_id = c.create_run(c.create_experiment("e", artifact_location=(tmp_path / "a").as_uri())).info.run_id
    runs.log_metrics(run_id, {"train_loss": 0.9}, 10)  # the curve's last point
    final = {"train_loss": 0.5, "train_runtime": 12.0}
    assert runs.log_lacking(run_id, final, 10) == 2  # as when train could not send them
    assert runs.log_lacking(run_id, final, 10) == 0
    assert sorted(m.value for m in c.get_metric_history(run_id, "train_loss")) == [0.5, 0.9]
