"""train: fine-tune the model on data/tokenized; save models/model, metrics/train.json; log to MLflow.

Runs alone (`python stages/train.py`), under `dvc repro`, and under `torchrun --nproc_per_node N`
(data parallel; only rank 0 writes files and logs).
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this project's package, also in DVC's temp copies

import csv
import io
import time

import pyarrow.parquet as pq
import transformers

from pubmed_rct import tracking
from pubmed_rct.abstracts import read_split
from pubmed_rct.io import atomic_path, load_params, read_json, run_stage, section, write_json, write_text
from pubmed_rct.labels import read_labels
from pubmed_rct.metrics import scores
from pubmed_rct.model import build_model, load_tokenizer, predict_proba
from pubmed_rct.training import TrainConfig, examples_from_table, fingerprint, train, world

DATA, LABELS, MODEL, SOURCE = "data/tokenized", "data/prepared/labels.json", "models/model", "data/raw/source.json"
METRICS, LOSS_CURVE, EPOCHS = "metrics/train.json", "metrics/train_loss.csv", "metrics/train_epochs.csv"
DEPS = ["data/tokenized", "data/prepared"]


def main() -> None:
    p = section(load_params(), "seed", "model", "context", "max_length", "use_downsampling", "tokenize",
                "train", "tracking")
    rank, world_size = world()
    config = TrainConfig.from_params(p["train"], p["seed"])
    mode, labels, source = p["context"], read_labels(LABELS), read_json(SOURCE)
    logged = {"model": p["model"], "context": mode, "max_length": p["max_length"], "seed": p["seed"],
              "use_downsampling": p["use_downsampling"], "data_source": source["source"],
              "data_revision": source.get("revision") or "", "data_commit": source.get("commit") or "",
              "number_form": source["number_form"],
              "context_max_length": p["tokenize"]["context_max_length"], **vars(config),
              # data parallel: batch_size is the global batch, so the learning rate stays as set for any world size
              "world_size": world_size, "per_device_batch_size": config.batch_size // max(world_size, 1),
              "global_batch_size": config.batch_size, "learning_rate_rule": "unchanged (global batch)"}

    run_id, uri, sender = None, tracking.tracking_uri(), None
    if rank == 0:
        run_id = start_tracking(p, logged, uri)
    if run_id:
        tracking.quick_http_failures()
        sender = tracking.MetricSender(run_id)  # the training loop never waits on the tracking server
    transformers.set_seed(config.seed)
    tokenizer = load_tokenizer(str(p["model"]))
    model = build_model(str(p["model"]), labels, mode)
    model.config.sentence_max_length = int(p["max_length"])
    model.config.context_max_length = int(p["tokenize"]["context_max_length"])
    model.config.number_form = source["number_form"]  # raw text gets the training data's number form
    examples = examples_from_table(pq.read_table(f"{DATA}/train.parquet"))
    val = examples_from_table(pq.read_table(f"{DATA}/validation.parquet"))
    val_rows = read_split("data/prepared/validation.parquet")
    label_id = {l: i for i, l in enumerate(labels)}
    curve: list[tuple[int, float, float, float]] = []
    epochs: list[tuple[int, float, float]] = []

    def log(metrics: dict, step: int) -> None:
        if sender:
            sender.log(metrics, step)

    def on_log(metrics: dict, step: int) -> None:
        curve.append((step, metrics["train_loss_step"], metrics["learning_rate"], round(time.monotonic() - start, 3)))
        log({"train_loss": metrics["train_loss_step"], "learning_rate": metrics["learning_rate"]}, step)

    def on_epoch_end(m, epoch: int, step: int) -> None:
        rows, probs = predict_proba(m, val, mode, tokenizer.pad_token_id, 256, config.precision)
        s = scores([label_id[val_rows[r]["label"]] for r in rows], probs.argmax(-1).tolist(), labels, "val")
        print(f"epoch {epoch}: val_macro_f1 {s['val_macro_f1']:.4f} val_micro_f1 {s['val_micro_f1']:.4f}")
        epochs.append((epoch, s["val_macro_f1"], s["val_micro_f1"]))
        log({"epoch_val_macro_f1": s["val_macro_f1"], "epoch_val_micro_f1": s["val_micro_f1"]}, epoch)

    # Checkpoints live outside DVC's outputs (DVC deletes outputs before a stage runs), keyed by params + data.
    key = fingerprint(config, str(p["model"]), mode, Path(f"{DATA}/train.parquet"))
    ckpt = tracking.project_home() / "checkpoints" / key
    start = time.monotonic()
    result = train(model, examples, config, mode, tokenizer.pad_token_id, ckpt, on_log, on_epoch_end)
    if rank != 0:
        return
    with atomic_path(MODEL) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
    weights = dict(zip(labels, result["class_weights"])) if result["class_weights"] else None
    result.update({"class_weights": weights or config.class_weights, "mlflow_run_id": run_id or "",
                   "mlflow_tracking_uri": uri if run_id else ""})
    write_json(METRICS, result)
    write_csv(LOSS_CURVE, [("step", "train_loss", "learning_rate", "elapsed_s"), *curve])
    write_csv(EPOCHS, [("epoch", "epoch_val_macro_f1", "epoch_val_micro_f1"), *epochs])
    log({k: result[k] for k in ("train_loss", "train_runtime", "train_samples_per_second")}
        | {f"class_weight_{label.replace(' ', '_')}": w for label, w in (weights or {}).items()}, result["train_steps"])
    if sender and (unsent := sender.close(wait_s=15)):
        print(f"WARNING: {unsent} metrics could not be sent to {uri}; {LOSS_CURVE} and {EPOCHS} hold them, and "
              "the evaluate stage sends what the run lacks (`dvc repro -f -s evaluate` once the server is back).",
              file=sys.stderr)
    print(f"train: {result}")


def write_csv(path: str, rows: list[tuple]) -> None:
    out = io.StringIO()
    csv.writer(out).writerows(rows)
    write_text(path, out.getvalue())


def start_tracking(p: dict, logged: dict, uri: str) -> str | None:
    """Start the MLflow run; a required tracking server that fails stops the stage before training."""
    try:
        tracking.check_server(uri)
        tags = tracking.lineage_tags(DEPS, logged["data_source"])
        return tracking.start_run(p["tracking"]["experiment"], logged, tags)
    except Exception as e:  # noqa: BLE001 - any failure to reach the store
        if p["tracking"].get("required", True):
            raise tracking.TrackingError(f"{e}\nTracking is required (params.yaml tracking.required); fix the "
                                         "server or run with -S tracking.required=false") from e
        print(f"WARNING: MLflow tracking unavailable ({e}); training WITHOUT tracking: nothing will be logged.",
              file=sys.stderr)
        return None


if __name__ == "__main__":
    run_stage(main)
