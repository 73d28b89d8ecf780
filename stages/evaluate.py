"""evaluate: validation and test scores, report, confusion matrix; log all of it and the model to MLflow."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this project's package, also in DVC's temp copies

import csv
import io

import pyarrow.parquet as pq

from pubmed_rct import pyfunc, tracking
from pubmed_rct.abstracts import read_split
from pubmed_rct.io import load_params, read_json, run_stage, section, write_json, write_text
from pubmed_rct.metrics import confusion_rows, plot_confusion, report, scores
from pubmed_rct.model import load_trained, predict_proba
from pubmed_rct.training import examples_from_table

MODEL, DATA, PREPARED, OUT = "models/model", "data/tokenized", "data/prepared", "metrics"
TRAIN_METRICS, SOURCE = "metrics/train.json", "data/raw/source.json"


def predictions(model, mode: str, pad_id: int, split: str, labels: list[str], batch_size: int):
    """(true ids, predicted ids) for every sentence of a split, in row order."""
    rows, probs = predict_proba(model, examples_from_table(pq.read_table(f"{DATA}/{split}.parquet")), mode,
                                pad_id, batch_size)
    prepared = read_split(f"{PREPARED}/{split}.parquet")
    if sorted(rows.tolist()) != list(range(len(prepared))):
        raise ValueError(f"{DATA}/{split}.parquet does not cover {PREPARED}/{split}.parquet; rerun `dvc repro`")
    label_id = {l: i for i, l in enumerate(labels)}
    order = rows.argsort()
    return [label_id[r["label"]] for r in prepared], probs[order].argmax(-1).tolist()


def main() -> None:
    p = section(load_params(), "evaluate", "tracking")
    model, tokenizer, mode, labels = load_trained(MODEL)
    results, test = {}, None
    for split, prefix in (("validation", "val"), ("test", "test")):
        y_true, y_pred = predictions(model, mode, tokenizer.pad_token_id, split, labels, int(p["evaluate"]["batch_size"]))
        results.update(scores(y_true, y_pred, labels, prefix))
        test = (y_true, y_pred)
    write_json(f"{OUT}/eval.json", results)
    write_text(f"{OUT}/classification_report.txt", f"test split, context: {mode}\n\n" + report(*test, labels))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=["actual", "predicted"])
    writer.writeheader()
    writer.writerows(confusion_rows(*test, labels))
    write_text(f"{OUT}/confusion.csv", buf.getvalue())
    plot_confusion(*test, labels, f"{OUT}/confusion_matrix.png", f"test, context: {mode}")
    print(f"evaluate: {results}")
    log_to_mlflow(p["tracking"], read_json(SOURCE)["source"], results, {"context": mode, "model": model.name_or_path})


def log_to_mlflow(p: dict, dataset: str, results: dict, params: dict) -> None:
    """Reopen the train stage's run and log the evaluation, the train metrics again, artifacts and model."""
    train = read_json(TRAIN_METRICS)
    try:
        tracking.check_server(tracking.tracking_uri())
        tags = tracking.lineage_tags(["data/tokenized", "data/prepared", "models/model"], dataset)
        run_id = tracking.reopen_or_start(train.get("mlflow_run_id"), p["experiment"], params, tags)
        final = {k: train[k] for k in ("train_loss", "train_runtime", "train_samples_per_second")}
        tracking.log_metrics(run_id, {**final, **results}, train.get("train_steps", 0))
        tracking.log_artifacts(run_id, [f"{OUT}/classification_report.txt", f"{OUT}/confusion_matrix.png",
                                        f"{OUT}/eval.json", TRAIN_METRICS])
        pyfunc.log_model(run_id, MODEL)
        tracking.set_tags(run_id, tags)  # a reopened run gets this run's models/model hash too
        tracking.finish(run_id)
        print(f"evaluate: logged to MLflow run {run_id} at {tracking.tracking_uri()}")
    except Exception as e:  # noqa: BLE001
        if p.get("required", True):
            raise tracking.TrackingError(f"logging to MLflow failed: {e}\nThe metrics files are written; "
                                         "rerun `dvc repro -f -s evaluate` once the server is back.") from e
        print(f"WARNING: MLflow unavailable ({e}); nothing was logged.", file=sys.stderr)


if __name__ == "__main__":
    run_stage(main)
