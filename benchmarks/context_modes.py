"""Context modes compared on real abstracts: test micro/macro F1 and per-class F1 over several seeds.

Runs the pipeline's own functions in one process (read, label maps, tokenize, train, predict, score),
so a GPU machine without DVC or MLflow can run it:

  python benchmarks/context_modes.py --model MODEL_DIR --data ../shared/data/nicta-piboso \
      --modes none abstract --seeds 1 2 3 --lr 5e-5

Class imbalance, each strategy in each mode (the table of the README's class-imbalance section):
  ... --modes none abstract --strategies baseline minority cap balanced sqrt --epochs 1 --precision bf16

Training quality of the fast step against the original project's way (context none, same data, model and seeds):
  ... --modes none --engine trainer         # the Hugging Face Trainer, defaults, pre-padded to max_length
  ... --modes none --cuda-graphs true       # the project's step as CUDA graphs (GPU)
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import transformers

from pubmed_rct.corpus.sources import abstracts_of, read_text_source
from pubmed_rct.modeling.encoding import build_examples, special_ids, tokenize_sentences
from pubmed_rct.corpus.labels import label_set
from pubmed_rct.training.metrics import scores
from pubmed_rct.modeling.spec import Spec
from pubmed_rct.modeling.model import build_model, load_tokenizer, predict_proba
from pubmed_rct.corpus.sampling import downsample
from pubmed_rct.params import shipped_train
from pubmed_rct.training.loop import train
from train_throughput import trainer_rows


def encode(tok, rows, mode, labels, max_length, ctx, in_loss=None):
    ex = build_examples(tokenize_sentences(tok, [r["text"] for r in rows]), abstracts_of(rows), mode, max_length, ctx,
                        *special_ids(tok), labels=[labels.index(r["label"]) for r in rows], in_loss=in_loss)
    return [dict(zip(ex, v)) for v in zip(*ex.values())]


# Against class imbalance: (downsample.strategy or None, train.class_weights)
STRATEGIES = {"baseline": (None, "none"), "minority": ("minority", "none"), "cap": ("cap", "none"),
              "balanced": (None, "balanced"), "sqrt": (None, "sqrt")}


def one_run(args, splits, labels, tok, mode: str, seed: int, strategy: str = "baseline") -> dict:
    cut, weighting = STRATEGIES["minority" if args.downsample else strategy]
    in_loss = downsample(splits["train"], cut, seed) if cut else None
    train_ex = encode(tok, splits["train"], mode, labels, args.max_length, args.context_max_length, in_loss)
    test_ex = encode(tok, splits["test"], mode, labels, args.max_length, args.context_max_length)
    transformers.set_seed(seed)
    model = build_model(args.model, labels, Spec(mode, args.max_length, args.context_max_length, "digits"))
    start = time.perf_counter()
    if args.engine == "trainer":
        result = train_with_trainer(model, train_ex, args, tok.pad_token_id, seed)
    else:
        config = shipped_train(learning_rate=args.lr, batch_size=args.batch_size, num_epochs=args.epochs,
                               compile=args.compile, precision=args.precision, cuda_graphs=args.cuda_graphs,
                               group_by_length=not args.no_group_by_length, log_every_steps=10 ** 9,
                               class_weights=weighting)
        result = train(model, train_ex, config, mode, tok.pad_token_id, seed, progress=False)
    train_s = time.perf_counter() - start
    if args.save:  # a model folder as the train stage writes it (benchmarks/onnx_quality.py reads it)
        out = Path(args.save) / f"{mode}-{strategy}-seed{seed}"
        model.save_pretrained(out)
        tok.save_pretrained(out)
    start = time.perf_counter()
    rows, probs = predict_proba(model, test_ex, mode, tok.pad_token_id, 256)
    predict_s = time.perf_counter() - start
    order = rows.argsort()
    y_true = [labels.index(r["label"]) for r in splits["test"]]
    s = scores(y_true, probs[order].argmax(-1).tolist(), labels, "test")
    return {"mode": mode, "seed": seed, "strategy": strategy, **s,
            "train_sentences": sum(in_loss) if in_loss else len(splits["train"]), "train_s": round(train_s, 2), "predict_s": round(predict_s, 3),
            "train_steps": result["train_steps"], "train_samples_per_second": result["train_samples_per_second"]}


def train_with_trainer(model, examples: list[dict], args, pad_id: int, seed: int) -> dict:
    """The original project's way: the Hugging Face Trainer with its defaults (fp32), inputs pre-padded to max_length."""
    import tempfile

    import torch
    from transformers import Trainer, TrainingArguments
    with tempfile.TemporaryDirectory() as tmp:
        targs = TrainingArguments(output_dir=tmp, per_device_train_batch_size=args.batch_size, learning_rate=args.lr,
                                  num_train_epochs=args.epochs, seed=seed, report_to=[], save_strategy="no",
                                  logging_strategy="no", disable_tqdm=True, use_cpu=not torch.cuda.is_available())
        out = Trainer(model=model, args=targs, train_dataset=trainer_rows(examples, args.max_length, pad_id)).train()
    return {"train_steps": out.global_step, "train_samples_per_second": out.metrics["train_samples_per_second"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared/data/nicta-piboso"))
    ap.add_argument("--modes", nargs="+", default=["none", "abstract"])
    ap.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3])
    ap.add_argument("--lr", type=float, default=5e-5)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--max-length", type=int, default=128)
    ap.add_argument("--context-max-length", type=int, default=512)
    ap.add_argument("--downsample", action="store_true", help="the same as --strategies minority")
    ap.add_argument("--strategies", nargs="+", choices=STRATEGIES, default=["baseline"],
                    help="against class imbalance: downsampling (minority, cap at the median class) or loss weights")
    ap.add_argument("--compile", default="false")
    ap.add_argument("--cuda-graphs", default="false", help="train.cuda_graphs: false | auto | true")
    ap.add_argument("--no-group-by-length", action="store_true", help="train.group_by_length: false")
    ap.add_argument("--engine", choices=("project", "trainer"), default="project",
                    help="trainer: the Hugging Face Trainer with defaults (context none only)")
    ap.add_argument("--precision", default="auto", help="auto: bf16 autocast on GPU, fp32 on CPU | bf16 | fp32")
    ap.add_argument("--limit", type=int, default=0, help="use only the first N abstracts of each split (smoke test)")
    ap.add_argument("--json", help="also write every run here")
    ap.add_argument("--save", help="also save each trained model in this folder, as MODE-STRATEGY-seedN")
    args = ap.parse_args()

    splits, _ = read_text_source(args.data)
    if args.limit:
        splits = {k: [r for r in v if r["abstract_id"] in {x["abstract_id"] for x in v[: args.limit * 12]}]
                  for k, v in splits.items()}
    if args.engine == "trainer" and args.modes != ["none"]:
        ap.error("--engine trainer trains single sentences: use --modes none")
    if args.engine == "trainer" and any(STRATEGIES[s][1] != "none" for s in args.strategies):
        ap.error("--engine trainer has no class weights: use --engine project for balanced and sqrt")
    labels = label_set(splits)
    tok = load_tokenizer(args.model)
    runs = []
    columns = [(mode, strategy) for mode in args.modes for strategy in args.strategies]
    for mode, strategy in columns:
        for seed in args.seeds:
            runs.append(one_run(args, splits, labels, tok, mode, seed, strategy))
            r = runs[-1]
            print(f"{mode:9s} {strategy:9s} seed {seed}: test micro {r['test_micro_f1']:.4f} macro "
                  f"{r['test_macro_f1']:.4f} train {r['train_s']:.1f}s predict {r['predict_s']:.2f}s", flush=True)
            if args.json:  # every run as it ends: a long benchmark keeps what it measured
                Path(args.json).write_text(json.dumps(runs, indent=2))
    keys = ["test_micro_f1", "test_macro_f1", "test_weighted_f1"] + [f"test_f1_{l.replace(' ', '_')}" for l in labels] + [
        "train_sentences", "train_s", "predict_s"]
    print(f"\n{args.engine}, lr {args.lr}, batch {args.batch_size}, {args.epochs} epochs, seeds {args.seeds}"
          f"{', downsampled' if args.downsample else ''}: mean ± sd")
    names = [mode if args.strategies == ["baseline"] else f"{mode}, {strategy}" for mode, strategy in columns]
    print(f"| {'metric':28s} | " + " | ".join(f"{m:>17s}" for m in names) + " |")
    for k in keys:
        cells = []
        for mode, strategy in columns:
            v = [r[k] for r in runs if r["mode"] == mode and r["strategy"] == strategy]
            cells.append(f"{statistics.mean(v):.4f} ± {statistics.stdev(v) if len(v) > 1 else 0:.4f}")
        print(f"| {k:28s} | " + " | ".join(f"{c:>17s}" for c in cells) + " |")
    if args.json:
        Path(args.json).write_text(json.dumps(runs, indent=2))


if __name__ == "__main__":
    main()
