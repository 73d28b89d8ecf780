"""Training throughput: the Hugging Face Trainer with its defaults against this project's train step.

Side by side in one process, on the same real abstract sentences and the same model shape:
  reference   Trainer defaults, inputs pre-padded to max_length, fp32 (how the original project trained)
  then the project's step (pubmed_rct.training.make_step), adding one optimisation at a time.
Prints samples/s, real tokens/s, ms/step, speedup and MFU against a matmul rate measured here.

  python benchmarks/train_throughput.py                         # CPU: a small BERT, few steps
  python benchmarks/train_throughput.py --shape minilm --steps 20   # CPU: all-MiniLM-L6-v2's shape
  python benchmarks/train_throughput.py --shape bert-base --steps 200 --warmup 30   # GPU: SciBERT's shape
  ... --check 30    # also: do the CUDA-graph step and the eager step train alike? (GPU; dropout off)

Before timing, each variant takes one batch of every shape the timed steps will meet (captures, compiles),
then --warmup steps.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch

from pubmed_rct.corpus.sources import read_text_file
from pubmed_rct.modeling.encoding import build_examples, tokenize_sentences
from pubmed_rct.modeling.batching import padded_width
from pubmed_rct.modeling.model import cpu_has_bf16, device_and_dtype
from pubmed_rct.params import Train, shipped_train
from pubmed_rct.training.loop import epoch_batches, make_optimizer, make_step

SHAPES = {"bert-base": dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072),
          "minilm": dict(hidden_size=384, num_hidden_layers=6, num_attention_heads=12, intermediate_size=1536),
          "small": dict(hidden_size=128, num_hidden_layers=2, num_attention_heads=2, intermediate_size=512)}
# one at a time, each adding to the one before
VARIANTS = [
    ("project step, fp32, pad per batch", dict(precision="fp32", group_by_length=False, fused_optimizer=False,
                                               compile="false", cuda_graphs="false")),
    ("+ bf16 autocast", dict(precision="bf16")),
    ("+ length-grouped batches", dict(group_by_length=True)),
    ("+ fused AdamW", dict(fused_optimizer=True)),
    ("+ CUDA graph of the whole step", dict(cuda_graphs="true")),
    ("+ torch.compile inside the graphs", dict(compile="true")),
    ("compile reduce-overhead instead of step graphs", dict(compile="reduce-overhead", cuda_graphs="false")),
]
CUDA_ONLY = ("+ CUDA graph of the whole step", "+ torch.compile inside the graphs",
             "compile reduce-overhead instead of step graphs")


def matmul_rate(device: torch.device) -> tuple[float, str]:
    """(dense matmul FLOP/s measured here, its dtype): bf16 on GPU and on CPUs with bf16 instructions, else fp32."""
    n = 8192 if device.type == "cuda" else 1024
    dtype = torch.bfloat16 if device.type == "cuda" or cpu_has_bf16() else torch.float32
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(3):
        a @ b
    sync(device)
    reps, start = (20 if device.type == "cuda" else 5), time.perf_counter()
    for _ in range(reps):
        a @ b
    sync(device)
    return 2 * n ** 3 * reps / (time.perf_counter() - start), str(dtype).removeprefix("torch.")


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def make_model(shape: str, vocab: int, labels: int, device, dropout: float = 0.1):
    from transformers import BertConfig, BertForSequenceClassification
    torch.manual_seed(0)
    config = BertConfig(vocab_size=vocab, num_labels=labels, hidden_dropout_prob=dropout,
                        attention_probs_dropout_prob=dropout, **SHAPES[shape])
    return BertForSequenceClassification(config).to(device)


def flops_per_token(model, seq: float) -> float:
    """Training FLOPs per real token: 6 × non-embedding parameters + attention (12 × layers × hidden × seq)."""
    c = model.config
    params = sum(p.numel() for n, p in model.named_parameters() if "embeddings" not in n)
    return 6 * params + 12 * c.num_hidden_layers * c.hidden_size * seq


def trainer_rows(examples: list[dict], max_length: int, pad_id: int) -> list[dict]:
    """Sentences as the original project fed the Trainer: pre-padded to max_length, one label each (context none)."""
    return [{"input_ids": e["input_ids"] + [pad_id] * (max_length - len(e["input_ids"])),
             "attention_mask": [1] * len(e["input_ids"]) + [0] * (max_length - len(e["input_ids"])),
             "labels": e["labels"][0]} for e in examples]


def run_reference(model, examples, args, device) -> float:
    """Seconds per step of the Trainer with defaults, inputs pre-padded to max_length."""
    from transformers import Trainer, TrainerCallback, TrainingArguments
    rows = trainer_rows(examples, args.max_length, pad_id=0)
    marks = {}

    class Clock(TrainerCallback):
        def on_step_end(self, a, state, control, **kw):
            if state.global_step in (args.warmup, args.warmup + args.steps):
                sync(device)
                marks[state.global_step] = time.perf_counter()

    targs = TrainingArguments(output_dir=str(Path(args.tmp) / "trainer"), per_device_train_batch_size=32,
                              learning_rate=2e-5, max_steps=args.warmup + args.steps, report_to=[],
                              save_strategy="no", logging_strategy="no", disable_tqdm=True,
                              use_cpu=device.type != "cuda")
    Trainer(model=model, args=targs, train_dataset=rows, callbacks=[Clock()]).train()
    return (marks[args.warmup + args.steps] - marks[args.warmup]) / args.steps


@contextmanager
def host_waits(device, caught: list | None):
    """Record where the host waits for the GPU (torch's sync debug mode) into `caught`; CUDA only."""
    if caught is None or device.type != "cuda":
        yield
        return
    torch.cuda.set_sync_debug_mode("warn")
    try:
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            yield
    finally:
        torch.cuda.set_sync_debug_mode("default")
    caught.extend(f"{Path(w.filename).name}:{w.lineno}" for w in seen if "synchroniz" in str(w.message))


def project_steps(model, examples, config: Train, steps: int, device, warmup: int = 0, first_shapes=True,
                  waits: list | None = None, fused: bool = True):
    """Run the project's step on `steps` batches after `warmup` (and one batch of each shape first);
    returns (seconds per timed step, losses). With `waits`, also where the steps made the host wait (CUDA)."""
    _, dtype = device_and_dtype(config.precision)
    if config.precision == "fp32":
        dtype = None
    optimizer = make_optimizer(model, config, device, fused)
    step = make_step(model, optimizer, None, config, "none", 0, device, dtype)
    batches = epoch_batches([len(e["input_ids"]) for e in examples], 32, 0, 0, config.group_by_length)
    batches = (batches * (1 + (warmup + steps) // len(batches)))[: warmup + steps]
    firsts = {}
    for b in batches if first_shapes else []:
        firsts.setdefault((len(b), padded_width([examples[j] for j in b], config.pad_multiple)), b)
    schedule = list(firsts.values()) + batches
    model.train()
    losses = []
    for i, b in enumerate(schedule):
        if i == len(firsts) + warmup:
            sync(device)
            start = time.perf_counter()
        with host_waits(device, waits):
            losses.append(step([examples[j] for j in b]))
    sync(device)
    return (time.perf_counter() - start) / steps, [float(l) for l in losses]


def check_graphs(examples, args, labels: int, device) -> None:
    """Same model, batches and seed, dropout off: the graphed step must train as the eager step does."""
    results, waits = {}, {"false": [], "true": []}
    for graphs in ("false", "true"):
        torch.manual_seed(0)
        model = make_model(args.shape, args.vocab, labels, device, dropout=0.0)
        config = shipped_train(precision="bf16", cuda_graphs=graphs)
        _, losses = project_steps(model, examples, config, args.check, device, first_shapes=False, waits=waits[graphs])
        results[graphs] = (losses, [p.detach().float().clone() for p in model.parameters()])
    (eager, pe), (graphed, pg) = results["false"], results["true"]
    diff = max((a - b).abs().max().item() for a, b in zip(pe, pg))
    scale = max(a.abs().max().item() for a in pe)
    note = "" if device.type == "cuda" else " (no CUDA device: both runs eager)"
    print(f"graph check{note}, {args.check} steps, bf16, dropout off: loss eager {eager[0]:.4f} -> {eager[-1]:.4f}, "
          f"graphed {graphed[0]:.4f} -> {graphed[-1]:.4f}; max |loss diff| "
          f"{max(abs(a - b) for a, b in zip(eager, graphed)):.2e}; max |weight diff| {diff:.2e} (weights up to {scale:.2f})",
          flush=True)
    for graphs, name in (("false", "eager"), ("true", "graphed (captures included)")) if device.type == "cuda" else ():
        sites = sorted(set(waits[graphs]))
        print(f"host waited for the GPU in {args.check} {name} steps: {len(waits[graphs])} times"
              + (f", at {', '.join(sites[:5])}" if sites else ""), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shape", choices=SHAPES, default="small")
    ap.add_argument("--vocab", type=int, default=31090, help="SciBERT's vocabulary size")
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared/data/nicta-piboso/train.txt"))
    ap.add_argument("--tokenizer", required=True, help="a BERT tokenizer folder, e.g. MiniLM's")
    ap.add_argument("--max-length", type=int, default=128)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--skip", nargs="*", default=[], help="variant numbers to skip (1-based)")
    ap.add_argument("--check", type=int, default=0, help="compare graphed and eager training over this many steps")
    ap.add_argument("--json", help="also write the table here")
    ap.add_argument("--tmp", default="/tmp")
    args = ap.parse_args()

    from transformers import AutoTokenizer
    device, _ = device_and_dtype("auto")
    tok = AutoTokenizer.from_pretrained(args.tokenizer)
    rows = read_text_file(args.data)
    label_id = {l: i for i, l in enumerate(sorted({r["label"] for r in rows}))}
    ids = tokenize_sentences(tok, [r["text"] for r in rows])
    ex = build_examples(ids, [[i] for i in range(len(rows))], "none", args.max_length, 512, tok.cls_token_id,
                        tok.sep_token_id, labels=[label_id[r["label"]] for r in rows])
    examples = [dict(zip(ex, v)) for v in zip(*ex.values())]
    mean_len = sum(len(e["input_ids"]) for e in examples) / len(examples)
    rate, rate_dtype = matmul_rate(device)
    name = torch.cuda.get_device_name() if device.type == "cuda" else f"CPU ({torch.get_num_threads()} threads)"
    print(f"device: {name}; matmul {rate / 1e12:.2f} TFLOP/s {rate_dtype}; model {args.shape}; {len(examples)} sentences, "
          f"mean {mean_len:.1f} tokens; batch 32; {args.steps} timed steps after {args.warmup}", flush=True)

    if args.check:  # first: a timeout in the slow compile rows must not lose it
        check_graphs(examples, args, len(label_id), device)
    results = []

    def report(label: str, seconds: float, model) -> None:
        sps = 32 / seconds
        tps = sps * mean_len
        mfu = tps * flops_per_token(model, mean_len) / rate
        base = results[0]["samples_per_s"] if results else sps
        results.append({"variant": label, "samples_per_s": round(sps, 1), "tokens_per_s": round(tps),
                        "ms_per_step": round(seconds * 1e3, 2), "speedup": round(sps / base, 2), "mfu": round(mfu, 4)})
        r = results[-1]
        print(f"{label:45s} {r['samples_per_s']:9.1f} {r['tokens_per_s']:10d} {r['ms_per_step']:9.2f} "
              f"{r['speedup']:7.2f}x {100 * r['mfu']:6.2f}%", flush=True)

    print(f"{'variant':45s} {'samples/s':>9s} {'tokens/s':>10s} {'ms/step':>9s} {'speedup':>8s} {'MFU':>7s}")
    report("Trainer defaults (fp32, padded to max_length)",
           run_reference(make_model(args.shape, args.vocab, len(label_id), device), examples, args, device),
           make_model(args.shape, args.vocab, len(label_id), "cpu"))
    config, fused = shipped_train(), True
    for number, (label, change) in enumerate(VARIANTS, 1):
        change = dict(change)
        fused = change.pop("fused_optimizer", fused)  # make_optimizer's switch, not a param
        config = replace(config, **change)
        if str(number) in args.skip or (device.type != "cuda" and label in CUDA_ONLY):
            continue
        try:
            model = make_model(args.shape, args.vocab, len(label_id), device)
            report(label, project_steps(model, examples, config, args.steps, device, args.warmup, fused=fused)[0], model)
        except Exception as e:  # noqa: BLE001 - one variant failing must not lose the others' figures
            print(f"{label:45s} failed: {type(e).__name__}: {str(e)[:200]}", flush=True)
        torch._dynamo.reset()
    if args.json:
        Path(args.json).write_text(json.dumps({"device": name, "matmul_tflops": rate / 1e12, "matmul_dtype": rate_dtype,
                                                  "rows": results}, indent=2))


if __name__ == "__main__":
    main()
