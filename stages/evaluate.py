"""evaluate: validation and test scores, report, confusion matrix; log all of it and the model to MLflow."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this project's package, also in DVC's temp copies

import csv
import io
import os

from pubmed_rct import cpu_inference, params, pyfunc, registry, tracking
from pubmed_rct.abstracts import read_split, read_table
from pubmed_rct.card import model_card
from pubmed_rct.io import read_json, run_stage, write_json, write_text
from pubmed_rct.metrics import confusion_rows, plot_confusion, report, scores
from pubmed_rct.model import load_trained, predict_proba
from pubmed_rct.onnx_inference import OnnxModel
from pubmed_rct.training import EXAMPLE_COLUMNS, examples_from_table

MODEL, DATA, PREPARED, OUT = "models/model", "data/tokenized", "data/prepared", "metrics"
TRAIN_METRICS, SOURCE, DATA_METRICS = "metrics/train.json", "data/raw/source.json", "metrics/data.json"
CARD = "metrics/model_card.md"  # also README.md in the logged model's folder and at the MLflow run's root
LINEAGE_DEPS = ["data/tokenized", "data/prepared", "models/model"]
CURVES = {"metrics/train_loss.csv": ("step", ["train_loss", "learning_rate"]),  # written by train
          "metrics/train_epochs.csv": ("epoch", ["epoch_val_macro_f1", "epoch_val_micro_f1"])}


def predictions(model, context: str, pad_id: int, split: str, labels: list[str], batch_size: int):
    """(true ids, predicted ids) for every sentence of a split, in row order."""
    rows, probs = predict_proba(model, examples_from_table(read_table(f"{DATA}/{split}.parquet", EXAMPLE_COLUMNS)), context,
                                pad_id, batch_size)
    prepared = read_split(f"{PREPARED}/{split}.parquet")
    if sorted(rows.tolist()) != list(range(len(prepared))):
        raise ValueError(f"{DATA}/{split}.parquet does not cover {PREPARED}/{split}.parquet; rerun `dvc repro`")
    label_id = {l: i for i, l in enumerate(labels)}
    order = rows.argsort()
    return [label_id[r["label"]] for r in prepared], probs[order].argmax(-1).tolist()


def onnx_scores(config, context: str, pad_id: int, labels: list[str], batch_size: int, test: tuple,
                results: dict, bounds: tuple[float, float]) -> dict:
    """The CPU path as the model folder's inference.json decided it (on validation), and the test scores of its
    ONNX Runtime file, against PyTorch: F1, the points it costs, how many of PyTorch's labels it gives; a
    warning where test breaks the bounds validation kept (the decision stays: test only reports)."""
    decision, file = cpu_inference.read(MODEL), cpu_inference.onnx_file(MODEL)
    out = {"cpu_inference": f"onnx {file.suffixes[0].lstrip('.')}" if file else "torch"}
    if decision and decision.get("int8"):
        drop = decision["int8"]["drop_points"]
        out.update(val_int8_micro_f1_drop=drop["micro_f1"], val_int8_macro_f1_drop=drop["macro_f1"],
                   val_int8_agreement=decision["int8"]["agreement"])
    if file is None:
        return out
    y_true, y_torch = test
    _, y_onnx = predictions(OnnxModel(file, config), context, pad_id, "test", labels, batch_size)
    s = scores(y_true, y_onnx, labels, "test")
    drop = {k: round(100 * (results[f"test_{k}_f1"] - s[f"test_{k}_f1"]), 3) for k in ("micro", "macro")}
    out.update(test_onnx_micro_f1=s["test_micro_f1"], test_onnx_macro_f1=s["test_macro_f1"],
               test_onnx_micro_f1_drop=drop["micro"], test_onnx_macro_f1_drop=drop["macro"],
               test_onnx_agreement=round(sum(a == b for a, b in zip(y_onnx, y_torch)) / max(len(y_torch), 1), 4))
    if drop["micro"] > bounds[0] or drop["macro"] > bounds[1]:
        print(f"WARNING: {file.name} loses {drop['micro']:.2f} micro-F1 and {drop['macro']:.2f} macro-F1 points on "
              f"test against PyTorch (bounds {bounds[0]}, {bounds[1]}; validation chose it: "
              f"{cpu_inference.describe(decision)})", file=sys.stderr)
    print(f"evaluate: CPUs run {file.name} ({cpu_inference.describe(decision)}); on test: {out}")
    return out


def main() -> None:
    p = params.load()
    model, tokenizer, context, labels = load_trained(MODEL)
    batch_size, results, test = p.evaluate.batch_size, {}, None
    for split, prefix in (("validation", "val"), ("test", "test")):
        y_true, y_pred = predictions(model, context, tokenizer.pad_token_id, split, labels, batch_size)
        results.update(scores(y_true, y_pred, labels, prefix))
        test = (y_true, y_pred)
    results.update(onnx_scores(model.config, context, tokenizer.pad_token_id, labels, batch_size, test, results,
                               (p.export.max_micro_f1_drop, p.export.max_macro_f1_drop)))
    write_json(f"{OUT}/eval.json", results)
    write_text(f"{OUT}/classification_report.txt", f"test split, context: {context}\n\n" + report(*test, labels))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=["actual", "predicted"])
    writer.writeheader()
    writer.writerows(confusion_rows(*test, labels))
    write_text(f"{OUT}/confusion.csv", buf.getvalue())
    plot_confusion(*test, labels, f"{OUT}/confusion_matrix.png", f"test, context: {context}")
    print(f"evaluate: {results}")
    source, train = read_json(SOURCE), read_json(TRAIN_METRICS)
    run_params = {**params.run_params(p, source), "context": context}  # the model's own, as trained

    tags = tracking.lineage_tags(LINEAGE_DEPS, source["source"])  # once: the card and the run share them

    def write_card(run_id: str | None) -> None:
        lineage = {"git commit": tags.get("mlflow.source.git.commit"),
                   "DVC experiment": os.environ.get("DVC_EXP_NAME"), "MLflow run": run_id,
                   "MLflow tracking": tracking.tracking_uri() if run_id else None,
                   **{f"dvc.lock {k.removeprefix('dvc.dep.')}": v for k, v in tags.items() if k.startswith("dvc.dep.")}}
        write_text(CARD, model_card(source, read_json(DATA_METRICS), run_params, train, results, labels, lineage))

    log_to_mlflow(p.tracking, source, train, results, run_params, write_card, tags)


def log_to_mlflow(settings: params.Tracking, source: dict, train: dict, results: dict, run_params: dict, write_card,
                  tags: dict) -> None:
    """Reopen the train stage's run and log the evaluation, the train metrics again, artifacts, the model and
    its card; register the model as a new version of tracking.registered_model."""
    try:
        tracking.check_server(tracking.tracking_uri())
        run_id = tracking.reopen_or_start(train.get("mlflow_run_id"), settings.experiment, run_params, tags)
        write_card(run_id)
        tracking.log_metrics(run_id, results, train.get("train_steps", 0))
        # what a tracking outage during training kept from the run: train's final metrics, then the curves
        final = {k: train[k] for k in ("train_loss", "train_runtime", "train_samples_per_second")}
        if sent := tracking.log_lacking(run_id, final, train.get("train_steps", 0)):
            print(f"evaluate: sent {sent} of train's final metrics the run lacked")
        for path, (step, keys) in CURVES.items():
            with open(path, newline="") as f:
                if sent := tracking.backfill(run_id, list(csv.DictReader(f)), step, keys):
                    print(f"evaluate: sent {sent} metrics of {path} the run lacked")
        tracking.log_artifacts(run_id, [f"{OUT}/classification_report.txt", f"{OUT}/confusion_matrix.png",
                                        f"{OUT}/eval.json", TRAIN_METRICS])
        tracking.log_artifact_as(run_id, CARD, "README.md")
        model_uri = pyfunc.log_model(run_id, MODEL, CARD)
        tracking.set_tags(run_id, tags)  # a reopened run gets this run's models/model hash too
        if name := settings.registered_model:
            version = registry.register(model_uri, name, {
                "run_id": run_id, "dvc.exp_name": os.environ.get("DVC_EXP_NAME", ""),
                "git.commit": tags.get("mlflow.source.git.commit", ""), "data_source": source["source"],
                "data_revision": source.get("revision") or "", "context": run_params["context"],
                **{k: v for k, v in tags.items() if k.startswith("dvc.dep.")},
                **{k: results[k] for k in ("test_micro_f1", "test_macro_f1", "val_micro_f1", "val_macro_f1")}})
            tracking.set_tags(run_id, {"registered_model": name, "registered_model_version": version})
            print(f"evaluate: registered {name} version {version} (@{registry.CHALLENGER}); "
                  f"`python -m pubmed_rct promote` makes it @{registry.CHAMPION} if it beats the champion")
        tracking.finish(run_id)
        print(f"evaluate: logged to MLflow run {run_id} at {tracking.tracking_uri()}")
    except (*tracking.store_errors(), registry.RegistryError) as e:
        write_card(None)
        if settings.required:
            raise tracking.TrackingError(f"logging to MLflow failed: {e}\nThe metrics files are written; "
                                         "rerun `dvc repro -f -s evaluate` once the server is back.") from e
        print(f"WARNING: MLflow unavailable ({e}); nothing was logged.", file=sys.stderr)


if __name__ == "__main__":
    run_stage(main)
