"""evaluate: validation and test scores, report, confusion matrix, what CPUs run and what it costs on test; log
all of it and the model to the train stage's MLflow run and register the model."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this project's package, also in DVC's temp copies

import os

from pubmed_rct import params
from pubmed_rct.corpus.store import read_split, read_table
from pubmed_rct.inference.cpu_path import test_report
from pubmed_rct.io import read_json, run_stage, write_json, write_text
from pubmed_rct.modeling.encoding import EXAMPLE_COLUMNS, examples_from_table
from pubmed_rct.modeling.model import load_trained, predict_proba
from pubmed_rct.tracking.card import model_card
from pubmed_rct.tracking.lineage import lineage_tags
from pubmed_rct.inference.pyfunc import log_model
from pubmed_rct.tracking.registry import CHALLENGER, CHAMPION
from pubmed_rct.tracking.stage_run import stage_run
from pubmed_rct.tracking.store import tracking_uri
from pubmed_rct.training.metrics import scores, write_evaluation

MODEL, DATA, PREPARED, OUT = "models/model", "data/tokenized", "data/prepared", "metrics"
TRAIN_METRICS, SOURCE, DATA_METRICS = "metrics/train.json", "data/raw/source.json", "metrics/data.json"
CARD = "metrics/model_card.md"  # also README.md in the logged model's folder and at the MLflow run's root
LINEAGE_DEPS = ["data/tokenized", "data/prepared", "models/model"]
CURVES = {"metrics/train_loss.csv": ("step", ["train_loss", "learning_rate"]),  # written by train
          "metrics/train_epochs.csv": ("epoch", ["epoch_val_macro_f1", "epoch_val_micro_f1"])}


def predictions(model, context: str, pad_id: int, split: str, labels: list[str], batch_size: int):
    """(true ids, predicted ids) for every sentence of a split, in row order."""
    examples = examples_from_table(read_table(f"{DATA}/{split}.parquet", EXAMPLE_COLUMNS))
    rows, probs = predict_proba(model, examples, context, pad_id, batch_size)
    prepared = read_split(f"{PREPARED}/{split}.parquet")
    if sorted(rows.tolist()) != list(range(len(prepared))):
        raise ValueError(f"{DATA}/{split}.parquet does not cover {PREPARED}/{split}.parquet; rerun `dvc repro`")
    label_id = {l: i for i, l in enumerate(labels)}
    return [label_id[r["label"]] for r in prepared], probs[rows.argsort()].argmax(-1).tolist()


def main() -> None:
    p = params.load()
    model, tokenizer, context, labels = load_trained(MODEL)
    results, test = {}, None
    for split, prefix in (("validation", "val"), ("test", "test")):
        test = predictions(model, context, tokenizer.pad_token_id, split, labels, p.evaluate.batch_size)
        results.update(scores(*test, labels, prefix))
    results.update(test_report(MODEL, lambda m: predictions(m, context, tokenizer.pad_token_id, "test", labels,
                                                            p.evaluate.batch_size)[1], test, results,
                               (p.export.max_micro_f1_drop, p.export.max_macro_f1_drop)))
    write_json(f"{OUT}/eval.json", results)
    write_evaluation(OUT, test, labels, context)
    print(f"evaluate: {results}")
    source, train = read_json(SOURCE), read_json(TRAIN_METRICS)
    run_params = {**params.run_params(p, source), "context": context}  # the model's own, as trained
    tags = lineage_tags(LINEAGE_DEPS, source["source"])  # once: the card and the run share them

    def write_card(run_id: str | None) -> None:
        lineage = {"git commit": tags.get("mlflow.source.git.commit"),
                   "DVC experiment": os.environ.get("DVC_EXP_NAME"), "MLflow run": run_id,
                   "MLflow tracking": tracking_uri() if run_id else None,
                   **{f"dvc.lock {k.removeprefix('dvc.dep.')}": v for k, v in tags.items() if k.startswith("dvc.dep.")}}
        write_text(CARD, model_card(source, read_json(DATA_METRICS), run_params, train, results, labels, lineage))

    log_to_mlflow(p.tracking, source, train, results, run_params, write_card, tags)


def log_to_mlflow(settings: params.Tracking, source: dict, train: dict, results: dict, run_params: dict, write_card,
                  tags: dict) -> None:
    """Reopen the train stage's run and log the evaluation, what an outage kept from it, artifacts, the model and
    its card; register the model as a new version of tracking.registered_model. The card is written either way."""
    write_card(None)
    step = train.get("train_steps", 0)
    with stage_run("evaluate", settings, run_params, tags, resume=train.get("mlflow_run_id")) as run:
        if not run.run_id:
            return
        write_card(run.run_id)
        run.log(results, step)
        final = {k: train[k] for k in ("train_loss", "train_runtime", "train_samples_per_second")}
        if sent := run.log_lacking(final, step):
            print(f"evaluate: sent {sent} of train's final metrics the run lacked")
        for path, (key, keys) in CURVES.items():
            if sent := run.backfill(Path(path), key, keys):
                print(f"evaluate: sent {sent} metrics of {path} the run lacked")
        run.artifacts([f"{OUT}/classification_report.txt", f"{OUT}/confusion_matrix.png", f"{OUT}/eval.json",
                       TRAIN_METRICS], as_readme=Path(CARD))
        model_uri = log_model(run.run_id, MODEL, CARD)  # the pyfunc, its card as README.md
        run.tag(tags)  # a reopened run gets this run's models/model hash too
        if name := settings.registered_model:
            version = run.register(model_uri, name, {
                "dvc.exp_name": os.environ.get("DVC_EXP_NAME", ""), "git.commit": tags.get("mlflow.source.git.commit",
                                                                                           ""),
                "data_source": source["source"], "data_revision": source.get("revision") or "",
                "context": run_params["context"], **{k: v for k, v in tags.items() if k.startswith("dvc.dep.")},
                **{k: results[k] for k in ("test_micro_f1", "test_macro_f1", "val_micro_f1", "val_macro_f1")}})
            print(f"evaluate: registered {name} version {version} (@{CHALLENGER}); `pubmed-rct promote` makes it "
                  f"@{CHAMPION} if it beats the champion")


if __name__ == "__main__":
    run_stage(main)
