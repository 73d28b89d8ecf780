"""A better int8? Today's int8 file against two candidates, on trained models, each measured against PyTorch
fp32: label agreement, micro and macro F1 deltas (points), p50 of one abstract and batch abstracts/s.

  python benchmarks/context_modes.py --model <MiniLM> --modes none abstract --seeds 42 43 44 --save /tmp/trained
  python benchmarks/onnx_quantization.py /tmp/trained/*-baseline-seed* [--data ../shared/data/nicta-piboso]

Paths: `ORT fp32` (the fused graph), `int8 dynamic` (today's: per-channel 7-bit weights, activations quantized
on the fly), `int8 static QDQ` (ORT's static quantization, per channel, calibrated on the validation split),
and `int8, k in fp32` (today's, with the k nodes that move the outputs most left in fp32: a sensitivity pass on
the validation split quantizes one node at a time and ranks the nodes by the KL divergence it causes; k is the
smallest that keeps the bounds on validation). Bounds: int8 may cost at most 0.3 micro-F1 and 0.5 macro-F1
points against PyTorch fp32 (docs/predict.md). Test is never used to choose.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import numpy as np  # noqa: E402

from label_speed import cpu_flags  # noqa: E402
from pubmed_rct.corpus.sources import abstracts_of, read_text_file  # noqa: E402
from pubmed_rct.training.metrics import scores  # noqa: E402

BOUNDS = {"micro": 0.3, "macro": 0.5}


def split_of(path: Path) -> tuple[list[list[str]], list[str]]:
    rows = read_text_file(path)
    groups = abstracts_of(rows)
    return [[rows[i]["text"] for i in g] for g in groups], [rows[i]["label"] for g in groups for i in g]


def outputs(labeler, split) -> tuple[list[str], np.ndarray]:
    """Labels and probabilities of every sentence of a split."""
    labelled = [s for abstract in labeler.label_sentences(split) for s in abstract]
    return [s["label"] for s in labelled], np.array([[s["probabilities"][l] for l in labeler.labels]
                                                    for s in labelled])


def f1(labels: list[str], gold: list[str], predicted: list[str]) -> tuple[float, float]:
    s = scores([labels.index(g) for g in gold], [labels.index(p) for p in predicted], labels, "x")
    return 100 * s["x_micro_f1"], 100 * s["x_macro_f1"]


def deltas(labels, gold, reference, predicted) -> dict:
    (m0, a0), (m1, a1) = f1(labels, gold, reference), f1(labels, gold, predicted)
    return {"agree": 100 * float(np.mean(np.array(reference) == np.array(predicted))), "micro": m1 - m0,
            "macro": a1 - a0}


def within(d: dict) -> bool:
    return -d["micro"] <= BOUNDS["micro"] + 1e-9 and -d["macro"] <= BOUNDS["macro"] + 1e-9


def kl(p: np.ndarray, q: np.ndarray) -> float:
    p, q = np.clip(p, 1e-6, 1), np.clip(q, 1e-6, 1)
    return float(np.mean(np.sum(p * np.log(p / q), axis=1)))


def onnx_labeler(file: Path, config, tokenizer, context, labels):
    from pubmed_rct.inference.onnx_runtime import OnnxModel
    from pubmed_rct.inference.predict import Labeler
    return Labeler(OnnxModel(file, config), tokenizer, context, labels)


def static_qdq(fused: Path, out: Path, labeler, split) -> Path:
    """ORT static quantization (QDQ, per channel, U8 activations / S8 weights), calibrated on `split`."""
    import onnx
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                          quantize_static)
    from pubmed_rct.modeling.encoding import build_examples

    ids = labeler.token_ids([s for a in split for s in a])
    spans, at = [], 0
    for a in split:
        spans.append(list(range(at, at + len(a))))
        at += len(a)
    ex = build_examples(ids, spans, labeler.context, labeler.max_length, labeler.context_max_length, labeler.cls,
                        labeler.sep)

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.items = iter([{"input_ids": np.array([x], dtype=np.int64),
                                "attention_mask": np.ones((1, len(x)), dtype=np.int64)}
                               for x in ex["input_ids"][:300]])

        def get_next(self):
            return next(self.items, None)

    quantize_static(str(fused), str(out), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                    calibrate_method=CalibrationMethod.MinMax,
                    extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
    return out


def speed(labeler, split) -> tuple[float, float]:
    """p50 ms of one ten-sentence abstract; batch abstracts/s (chunks of 32, one worker thread per core)."""
    ten = [a for a in split if len(a) == 10][:19] or split[:19]
    labeler.label_sentences([ten[0]])
    times = []
    for a in ten * 2:
        start = time.perf_counter()
        labeler.label_sentences([a])
        times.append(1000 * (time.perf_counter() - start))
    texts = [" ".join(a) for a in split[:200]]
    chunks = [texts[i:i + 32] for i in range(0, len(texts), 32)]
    start = time.perf_counter()
    list(labeler.label_chunks(chunks))
    return statistics.median(times), len(texts) / (time.perf_counter() - start)


def sensitivity(fused: Path, nodes: list[str], tmp: Path, make, dev, reference_probs) -> list[tuple[float, str]]:
    """(KL divergence from fp32 on the validation split, node) for each node quantized alone, most first."""
    from pubmed_rct.inference.onnx_runtime import quantize
    ranked = []
    for i, node in enumerate(nodes):
        out = quantize(fused, tmp / f"one-{i}.onnx", tuple(n for n in nodes if n != node))
        _, probs = outputs(make(out), dev)
        ranked.append((kl(reference_probs, probs), node))
        out.unlink()
    return sorted(ranked, reverse=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("models", nargs="+", type=Path, help="trained model folders (context_modes.py --save)")
    ap.add_argument("--data", type=Path, default=HERE.parents[1] / "shared" / "data" / "nicta-piboso")
    ap.add_argument("--max-k", type=int, default=8)
    args = ap.parse_args()
    from pubmed_rct.modeling.model import load_tokenizer, load_trained, trained_config
    from pubmed_rct.inference.onnx_runtime import fused_graph, quantizable, quantize
    from pubmed_rct.inference.predict import Labeler
    dev, dev_gold = split_of(args.data / "dev.txt")
    test, test_gold = split_of(args.data / "test.txt")
    print(f"{len(dev_gold)} validation and {len(test_gold)} test sentences ({args.data.name}); "
          f"{len(__import__('os').sched_getaffinity(0))} cores, CPU flags {cpu_flags()}")
    print("| model | path | val Δ micro / macro | test agreement | test Δ micro | test Δ macro | within bounds "
          "(test) | p50 ms | batch abstracts/s | fp32 nodes |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for folder in args.models:
        config, context, labels = trained_config(folder)
        tokenizer = load_tokenizer(str(folder))
        torch_labeler = Labeler(load_trained(folder)[0], tokenizer, context, labels, precision="fp32")
        ref_dev, ref_dev_probs = outputs(torch_labeler, dev)
        ref_test, _ = outputs(torch_labeler, test)
        name = folder.name
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            fused = fused_graph(folder, tmp)
            make = lambda f: onnx_labeler(f, config, tokenizer, context, labels)  # noqa: E731
            rows = [("ORT fp32", fused, ())]
            rows.append(("int8 dynamic (today)", quantize(fused, tmp / "dynamic.onnx"), ()))
            try:
                rows.append(("int8 static QDQ", static_qdq(fused, tmp / "static.onnx", torch_labeler, dev), ()))
            except Exception as e:  # noqa: BLE001 - report why ORT could not, and go on
                print(f"| {name} ({context}) | int8 static QDQ | failed: {type(e).__name__}: {str(e)[:120]} |")
            nodes = quantizable(fused)
            ranked = sensitivity(fused, nodes, tmp, make, dev, ref_dev_probs)
            for k in range(1, args.max_k + 1):
                kept = tuple(n for _, n in ranked[:k])
                candidate = quantize(fused, tmp / f"mixed-{k}.onnx", kept)
                d = deltas(labels, dev_gold, ref_dev, outputs(make(candidate), dev)[0])
                if within(d) or k == args.max_k:
                    rows.append((f"int8, {k} in fp32", candidate, kept))
                    break
            for path, file, kept in rows:
                labeler = make(file)
                dv = deltas(labels, dev_gold, ref_dev, outputs(labeler, dev)[0])
                dt = deltas(labels, test_gold, ref_test, outputs(labeler, test)[0])
                p50, rate = speed(labeler, test)
                print(f"| {name} ({context}) | {path} | {dv['micro']:+.2f} / {dv['macro']:+.2f} | {dt['agree']:.2f} % "
                      f"| {dt['micro']:+.2f} | {dt['macro']:+.2f} | {'yes' if within(dt) else 'no'} | {p50:.0f} | "
                      f"{rate:.1f} | {', '.join(kept) or '-'} |", flush=True)
            p50, rate = speed(torch_labeler, test)
            print(f"| {name} ({context}) | torch fp32 | +0.00 / +0.00 | 100.00 % | +0.00 | +0.00 | yes | {p50:.0f} | "
                  f"{rate:.1f} | - |", flush=True)
            print(f"| {name} ({context}) | sensitivity (KL, top 8) | " +
                  ", ".join(f"{node} {value:.2e}" for value, node in ranked[:8]) + " |||||||", flush=True)


if __name__ == "__main__":
    main()
