"""train: fine-tune the model on data/tokenized; save models/model (with what CPUs run, decided on the validation
split), metrics/train.json and the loss curves; log to MLflow.

Runs alone (`python stages/train.py`), under `dvc repro`, and under `torchrun --nproc_per_node N`
(data parallel; only rank 0 writes files and logs).
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this project's package, also in DVC's temp copies

import contextlib
import csv
import io
import time

import transformers

from pubmed_rct import lifetime, params
from pubmed_rct.corpus.labels import read_labels
from pubmed_rct.corpus.store import read_split, read_table
from pubmed_rct.inference import cpu_path
from pubmed_rct.io import atomic_path, read_json, run_stage, write_json, write_text
from pubmed_rct.modeling.encoding import EXAMPLE_COLUMNS, examples_from_table
from pubmed_rct.modeling.model import build_model, load_tokenizer, predict_proba
from pubmed_rct.modeling.spec import Spec
from pubmed_rct.tracking.lineage import lineage_tags
from pubmed_rct.tracking.stage_run import StageRun, stage_run
from pubmed_rct.tracking.store import project_home, tracking_uri
from pubmed_rct.training import checkpoints
from pubmed_rct.training.distributed import process_group
from pubmed_rct.training.loop import fingerprint, train
from pubmed_rct.training.metrics import scores

DATA, LABELS, MODEL, SOURCE = "data/tokenized", "data/prepared/labels.json", "models/model", "data/raw/source.json"
METRICS, LOSS_CURVE, EPOCHS = "metrics/train.json", "metrics/train_loss.csv", "metrics/train_epochs.csv"
DEPS = ["data/tokenized", "data/prepared"]


def main() -> None:
    p = params.load()
    lifetime.end_with_parent()  # `kill -9` of dvc alone must not leave this process writing outputs later
    # Inputs first: a bad file fails here, before a run is opened or a model loaded.
    labels, source = read_labels(LABELS), read_json(SOURCE)
    examples = examples_from_table(read_table(f"{DATA}/train.parquet", EXAMPLE_COLUMNS))
    val = examples_from_table(read_table(f"{DATA}/validation.parquet", EXAMPLE_COLUMNS))
    val_rows = read_split("data/prepared/validation.parquet")
    # Checkpoints live outside DVC's outputs (DVC deletes outputs before a stage runs), keyed by params + data.
    key = fingerprint(p.train, p.seed, p.model, p.context, Path(f"{DATA}/train.parquet"))
    ckpt = project_home() / "checkpoints" / key
    lock = lifetime.exclusive(project_home() / ".dvc" / "tmp" / f"train-{key}.lock",  # beside DVC's own
                              "training with these params and data")
    with process_group() as (rank, world_size), lock if rank == 0 else contextlib.nullcontext():
        logged = {**params.run_params(p, source),
                  # data parallel: batch_size is the global batch, so the learning rate stays as set for any size
                  "world_size": world_size, "per_device_batch_size": p.train.batch_size // world_size,
                  "global_batch_size": p.train.batch_size, "learning_rate_rule": "unchanged (global batch)"}
        saved = checkpoints.load(ckpt / "state.pt")
        carry = {"run_id": None, "curve": [], "epochs": [], **(saved or {}).get("carry", {})}
        data = (labels, source, examples, val, val_rows)
        if rank != 0:  # the other processes train beside rank 0; it alone tracks and writes
            fit(p, data, ckpt, saved, carry, StageRun(None), rank)
            return
        with stage_run("train", p.tracking, logged, lineage_tags(DEPS, logged["data_source"]),
                       resume=carry["run_id"], marker=ckpt / "run.json") as run:
            carry["run_id"] = run.run_id
            result = fit(p, data, ckpt, saved, carry, run, rank)
            write_outputs(p, labels, result, carry, run)
        checkpoints.discard(ckpt)  # only now: the model and every output are written, the run is ended
        print(f"train: {result}")


def write_outputs(p: params.Params, labels: list[str], result: dict, carry: dict, run: StageRun) -> None:
    """metrics/train.json and the two curves (what a tracking outage kept from the run is there too); train's
    final metrics to the run."""
    weights = dict(zip(labels, result["class_weights"])) if result["class_weights"] else None
    result.update({"class_weights": weights or p.train.class_weights, "mlflow_run_id": run.run_id or "",
                   "mlflow_tracking_uri": tracking_uri() if run.run_id else ""})
    write_json(METRICS, result)
    write_csv(LOSS_CURVE, [("step", "train_loss", "learning_rate", "elapsed_s"), *carry["curve"]])
    write_csv(EPOCHS, [("epoch", "epoch_val_macro_f1", "epoch_val_micro_f1"), *carry["epochs"]])
    run.log({k: result[k] for k in ("train_loss", "train_runtime", "train_samples_per_second")}
            | {f"class_weight_{label.replace(' ', '_')}": w for label, w in (weights or {}).items()},
            result["train_steps"])


def fit(p: params.Params, data: tuple, ckpt: Path, saved, carry: dict, run: StageRun, rank: int) -> dict:
    """Build the model, train it (from the checkpoint `saved` if any), save it to models/model with its ONNX
    Runtime file for CPUs, int8 only where validation keeps the bounds (export.*; docs/predict.md)."""
    labels, source, examples, val, val_rows = data
    transformers.set_seed(p.seed)
    tokenizer = load_tokenizer(p.model)
    model = build_model(p.model, labels, Spec(context=p.context, sentence_max_length=p.max_length,
                                              context_max_length=p.tokenize.context_max_length,
                                              number_form=source["number_form"]))  # raw text read as the data was
    label_id = {l: i for i, l in enumerate(labels)}
    start = time.monotonic() - (carry["curve"][-1][3] if carry["curve"] else 0.0)

    def on_log(metrics: dict, step: int) -> None:
        carry["curve"].append((step, metrics["train_loss_step"], metrics["learning_rate"],
                               round(time.monotonic() - start, 3)))
        run.log({"train_loss": metrics["train_loss_step"], "learning_rate": metrics["learning_rate"]}, step)

    def on_epoch_end(m, epoch: int, step: int) -> None:
        rows, probs = predict_proba(m, val, p.context, tokenizer.pad_token_id, 256, p.train.precision)
        s = scores([label_id[val_rows[r]["label"]] for r in rows], probs.argmax(-1).tolist(), labels, "val")
        print(f"epoch {epoch}: val_macro_f1 {s['val_macro_f1']:.4f} val_micro_f1 {s['val_micro_f1']:.4f}")
        carry["epochs"].append((epoch, s["val_macro_f1"], s["val_micro_f1"]))
        run.log({"epoch_val_macro_f1": s["val_macro_f1"], "epoch_val_micro_f1": s["val_micro_f1"]}, epoch)

    result = train(model, examples, p.train, p.context, tokenizer.pad_token_id, p.seed, ckpt, on_log, on_epoch_end,
                   resume=saved, carry=carry)
    if rank == 0:
        with atomic_path(MODEL) as tmp:
            model.save_pretrained(tmp)
            tokenizer.save_pretrained(tmp)
            if p.export.onnx != "none":
                start = time.monotonic()
                score = cpu_path.scorer(model, val, val_rows, labels, p.context, tokenizer.pad_token_id)
                bounds = (p.export.max_micro_f1_drop, p.export.max_macro_f1_drop)
                decision = cpu_path.decide_or_warn(tmp, p.export.onnx, bounds, score, MODEL, p.export.max_fp32_nodes)
                if decision["file"]:
                    print(f"train: CPUs run {decision['file']} ({(tmp / decision['file']).stat().st_size / 2 ** 20:.1f}"
                          f" MiB, {time.monotonic() - start:.0f} s): {decision['why']}")
    return result


def write_csv(path: str, rows: list[tuple]) -> None:
    out = io.StringIO()
    csv.writer(out).writerows(rows)
    write_text(path, out.getvalue())


if __name__ == "__main__":
    run_stage(main)
