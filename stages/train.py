"""train: fine-tune the model on data/tokenized; save models/model, metrics/train.json; log to MLflow.

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

from pubmed_rct import checkpoints, cpu_inference, lifetime, params, tracking
from pubmed_rct.abstracts import read_split, read_table
from pubmed_rct.io import atomic_path, read_json, run_stage, write_json, write_text
from pubmed_rct.labels import read_labels
from pubmed_rct.metrics import scores
from pubmed_rct.model import build_model, load_tokenizer, predict_proba
from pubmed_rct.training import EXAMPLE_COLUMNS, examples_from_table, fingerprint, process_group, train

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
    ckpt = tracking.project_home() / "checkpoints" / key
    lock = lifetime.exclusive(tracking.project_home() / ".dvc" / "tmp" / f"train-{key}.lock",  # beside DVC's own
                              "training with these params and data")
    with process_group() as (rank, world_size), lock if rank == 0 else contextlib.nullcontext():
        logged = {**params.run_params(p, source),
                  # data parallel: batch_size is the global batch, so the learning rate stays as set for any size
                  "world_size": world_size, "per_device_batch_size": p.train.batch_size // world_size,
                  "global_batch_size": p.train.batch_size, "learning_rate_rule": "unchanged (global batch)"}
        train_stage(p, labels, source, logged, examples, val, val_rows, ckpt, rank)


def train_stage(p: params.Params, labels, source, logged, examples, val, val_rows, ckpt: Path, rank: int) -> None:
    """Resume or start the MLflow run, train, write the outputs; the run ends FAILED (KILLED when stopped) if
    anything fails, and FINISHED once the outputs are written (evaluate reopens it)."""
    saved = checkpoints.load(ckpt / "state.pt")
    carry = {"run_id": None, "curve": [], "epochs": [], **(saved or {}).get("carry", {})}
    run_id, uri, sender = None, tracking.tracking_uri(), None
    if rank == 0:
        run_id = start_tracking(p, logged, uri, carry["run_id"], ckpt / "run.json")
        carry["run_id"] = run_id
    try:
        if run_id:
            tracking.quick_http_failures()
            sender = tracking.MetricSender(run_id)  # the training loop never waits on the tracking server
        result = fit(p, labels, source, examples, val, val_rows, ckpt, saved, carry, sender, rank)
        if rank != 0:
            return
        weights = dict(zip(labels, result["class_weights"])) if result["class_weights"] else None
        result.update({"class_weights": weights or p.train.class_weights, "mlflow_run_id": run_id or "",
                       "mlflow_tracking_uri": uri if run_id else ""})
        write_json(METRICS, result)
        write_csv(LOSS_CURVE, [("step", "train_loss", "learning_rate", "elapsed_s"), *carry["curve"]])
        write_csv(EPOCHS, [("epoch", "epoch_val_macro_f1", "epoch_val_micro_f1"), *carry["epochs"]])
        if sender:
            sender.log({k: result[k] for k in ("train_loss", "train_runtime", "train_samples_per_second")}
                       | {f"class_weight_{label.replace(' ', '_')}": w for label, w in (weights or {}).items()},
                       result["train_steps"])
        if sender and (unsent := sender.close(wait_s=15)):
            print(f"WARNING: {unsent} metrics could not be sent to {uri}; {LOSS_CURVE} and {EPOCHS} hold them, and "
                  "the evaluate stage sends what the run lacks (`dvc repro -f -s evaluate` once the server is back).",
                  file=sys.stderr)
        if run_id:
            tracking.end_if_running(run_id, "FINISHED")
        checkpoints.discard(ckpt)  # only now: the model and every output are written, the run is ended
        print(f"train: {result}")
    except BaseException as e:
        if run_id:  # never leave it RUNNING; a resumed run sets it RUNNING again
            with lifetime.shielded():  # a second Ctrl-C or SIGTERM waits for this (at most ~10 s)
                if sender:
                    sender.close(wait_s=5)  # its thread stops writing first: one writer to the store
                try:
                    tracking.end_if_running(run_id, "KILLED" if isinstance(e, KeyboardInterrupt) else "FAILED")
                except tracking.store_errors() as err:  # the original failure is the one to report
                    print(f"WARNING: MLflow run {run_id} could not be ended ({type(err).__name__}: {err}); the "
                          "next train ends or resumes it", file=sys.stderr)
        raise


def fit(p: params.Params, labels, source, examples, val, val_rows, ckpt: Path, saved, carry: dict, sender,
        rank: int) -> dict:
    """Build the model, train it (from the checkpoint `saved` if any), save it to models/model with its ONNX
    Runtime file for CPU inference (export.onnx; docs/predict.md)."""
    transformers.set_seed(p.seed)
    tokenizer = load_tokenizer(p.model)
    model = build_model(p.model, labels, p.context)
    model.config.sentence_max_length = p.max_length
    model.config.context_max_length = p.tokenize.context_max_length
    model.config.number_form = source["number_form"]  # raw text gets the training data's number form
    label_id = {l: i for i, l in enumerate(labels)}
    start = time.monotonic() - (carry["curve"][-1][3] if carry["curve"] else 0.0)

    def log(metrics: dict, step: int) -> None:
        if sender:
            sender.log(metrics, step)

    def on_log(metrics: dict, step: int) -> None:
        carry["curve"].append((step, metrics["train_loss_step"], metrics["learning_rate"],
                               round(time.monotonic() - start, 3)))
        log({"train_loss": metrics["train_loss_step"], "learning_rate": metrics["learning_rate"]}, step)

    def on_epoch_end(m, epoch: int, step: int) -> None:
        rows, probs = predict_proba(m, val, p.context, tokenizer.pad_token_id, 256, p.train.precision)
        s = scores([label_id[val_rows[r]["label"]] for r in rows], probs.argmax(-1).tolist(), labels, "val")
        print(f"epoch {epoch}: val_macro_f1 {s['val_macro_f1']:.4f} val_micro_f1 {s['val_micro_f1']:.4f}")
        carry["epochs"].append((epoch, s["val_macro_f1"], s["val_micro_f1"]))
        log({"epoch_val_macro_f1": s["val_macro_f1"], "epoch_val_micro_f1": s["val_micro_f1"]}, epoch)

    result = train(model, examples, p.train, p.context, tokenizer.pad_token_id, p.seed, ckpt, on_log, on_epoch_end,
                   resume=saved, carry=carry)
    if rank == 0:
        with atomic_path(MODEL) as tmp:
            model.save_pretrained(tmp)
            tokenizer.save_pretrained(tmp)
            if p.export.onnx != "none":
                start = time.monotonic()

                def score(onnx_model) -> tuple[float, float, list[int]]:  # validation micro, macro F1 and labels
                    rows, probs = predict_proba(onnx_model or model, val, p.context, tokenizer.pad_token_id, 256)
                    predicted = probs.argmax(-1).tolist()
                    s = scores([label_id[val_rows[r]["label"]] for r in rows], predicted, labels, "val")
                    return s["val_micro_f1"], s["val_macro_f1"], [x for _, x in sorted(zip(rows.tolist(), predicted))]
                bounds = (p.export.max_micro_f1_drop, p.export.max_macro_f1_drop)
                decision = cpu_inference.decide_or_warn(tmp, p.export.onnx, bounds, score, MODEL)
                if decision["file"]:
                    print(f"train: CPUs run {decision['file']} ({(tmp / decision['file']).stat().st_size / 2 ** 20:.1f}"
                          f" MiB, {time.monotonic() - start:.0f} s): {decision['why']}")
    return result


def write_csv(path: str, rows: list[tuple]) -> None:
    out = io.StringIO()
    csv.writer(out).writerows(rows)
    write_text(path, out.getvalue())


def start_tracking(p: params.Params, logged: dict, uri: str, resumed: str | None, marker: Path) -> str | None:
    """The MLflow run: the checkpoint's own (`resumed`), set RUNNING again, or a new one; a run that an earlier
    process opened and never closed (killed before its first checkpoint; `marker` names it) ends KILLED. A
    required tracking server that fails stops the stage before training."""
    try:
        tracking.check_server(uri)
        if marker.is_file() and (stale := read_json(marker).get("run_id")) and stale != resumed:
            tracking.end_if_running(stale, "KILLED")
        if resumed and tracking.reopen(resumed):
            print(f"train: resuming MLflow run {resumed}")
            return resumed
        tags = tracking.lineage_tags(DEPS, logged["data_source"])
        run_id = tracking.start_run(p.tracking.experiment, logged, tags)
        write_json(marker, {"run_id": run_id})
        return run_id
    except tracking.store_errors() as e:  # a bug in this code is not "the store is unreachable"
        if p.tracking.required:
            raise tracking.TrackingError(f"{e}\nTracking is required (params.yaml tracking.required); fix the "
                                         "server or run with -S tracking.required=false") from e
        print(f"WARNING: MLflow tracking unavailable ({e}); training WITHOUT tracking: nothing will be logged.",
              file=sys.stderr)
        return None


if __name__ == "__main__":
    run_stage(main)
