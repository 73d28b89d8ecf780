"""MLflow tracking against a real `mlflow server` on 127.0.0.1, read back through MlflowClient."""
import json
import sys

import pandas as pd
import pytest
import yaml

import services
from conftest import ROOT, make_project, run

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
