"""End to end: the real `dvc repro` and `dvc exp run` on the fixture corpus with a tiny BERT."""
import json

import yaml

from conftest import run

STAGES = ["download", "prepare", "tokenize", "train", "evaluate"]
NO_SERVER = {"MLFLOW_TRACKING_URI": ""}  # the embedded SQLite default


def test_repro_then_downsampling_experiment_shows_in_metrics_diff(project):
    run(["dvc", "repro"], project, NO_SERVER)
    lock = yaml.safe_load((project / "dvc.lock").read_text())
    assert list(lock["stages"]) == STAGES
    ev = json.loads((project / "metrics/eval.json").read_text())
    assert ev["test_micro_f1"] > 0.9 and ev["val_macro_f1"] > 0.9  # the tiny model learned the fixture's roles
    train = json.loads((project / "metrics/train.json").read_text())
    assert train["train_steps"] == 10 * 36 and train["train_samples"] == 10 * 284  # 284 sentences, batch 8
    assert train["train_samples_per_second"] > 0 and train["train_loss"] > 0
    assert (project / "metrics/confusion_matrix.png").read_bytes()[:4] == b"\x89PNG"
    assert "CONCLUSIONS" in (project / "metrics/classification_report.txt").read_text()
    assert (project / "models/model/config.json").is_file()
    data = json.loads((project / "metrics/data.json").read_text())
    assert data["train_counts"] == data["train_counts_before"] and min(data["train_counts"].values()) == 36

    # nothing changed: dvc repro runs nothing
    assert "didn't change" in run(["dvc", "repro"], project, NO_SERVER).stdout
    run("git add -A && git commit -qm baseline", project)

    run(["dvc", "exp", "run", "-S", "use_downsampling=true"], project, NO_SERVER)
    diff = json.loads(run(["dvc", "metrics", "diff", "--json"], project).stdout)
    data_diff = diff["metrics/data.json"]
    for label in ("BACKGROUND", "METHODS", "RESULTS"):
        change = data_diff[f"train_counts.{label}"]
        assert change["new"] == 36 and change["old"] > 34
    assert data_diff["train_sentences"] == {"old": 284, "new": 5 * 36, "diff": 5 * 36 - 284}
    assert "validation_counts.RESULTS" not in data_diff and "test_counts.RESULTS" not in data_diff
    assert "test_micro_f1" in diff["metrics/eval.json"] or "train_loss" in diff["metrics/train.json"]

    shown = run(["dvc", "exp", "show", "--json"], project).stdout
    assert '"use_downsampling": true' in shown.replace("True", "true")
    plots = run(["dvc", "plots", "show", "--json"], project).stdout
    assert "metrics/confusion.csv" in plots
