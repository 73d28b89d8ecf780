"""Prediction speed on this CPU, each inference path side by side: single-abstract latency (p50, p95), where a
single abstract's time goes (split, tokenize, pad, forward), batch abstracts/s, model file size and peak
memory, for MiniLM and a BERT-base-sized model (SciBERT's size), in each context mode. Real abstracts from
nicta-piboso test; the models' heads are untrained (speed only: benchmarks/onnx_quality.py measures labels).

  python benchmarks/predict_speed.py --model MINILM_DIR [--abstracts 200] [--single 30] [--shapes MiniLM BERT-base]

Paths: `torch` is what `Labeler` does with PyTorch (bf16 weights on a CPU with native bf16, else fp32);
`torch fp32`; `ORT fp32` and `ORT int8`, the ONNX Runtime files `export-onnx` writes. Each path runs in a
process of its own, so its peak memory (VmHWM) is its own.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

PATHS = ("torch", "torch fp32", "ORT fp32", "ORT int8")


def bert_base_dir(tokenizer_dir: str, mode: str, labels: list[str], out: str) -> str:
    """A randomly initialised BERT-base (SciBERT's size) saved with the MiniLM tokenizer: speed only."""
    from transformers import AutoModelForSequenceClassification, AutoModelForTokenClassification, BertConfig

    from pubmed_rct.modeling import spec
    from pubmed_rct.modeling.model import load_tokenizer
    cls = AutoModelForSequenceClassification if mode == "none" else AutoModelForTokenClassification
    model = cls.from_config(BertConfig(vocab_size=31090, num_labels=len(labels)))
    spec.write(model.config, spec.Spec(mode, 128, 512, "digits"))
    model.save_pretrained(out)
    load_tokenizer(tokenizer_dir).save_pretrained(out)
    return out


def texts(data: str, single: int, abstracts: int) -> tuple[list[str], list[str]]:
    from pubmed_rct.corpus.sources import abstracts_of, read_text_file
    rows = read_text_file(data)
    groups = abstracts_of(rows)
    all_texts = [" ".join(rows[i]["text"] for i in g) for g in groups]
    ten = [t for t, g in zip(all_texts, groups) if len(g) == 10][:single]  # 10-sentence abstracts
    return ten, all_texts[:abstracts]


def labeler_for(folder: str, path: str):
    from pubmed_rct.modeling.model import load_tokenizer, load_trained, trained_config
    from pubmed_rct.inference.onnx_runtime import OnnxModel, onnx_file
    from pubmed_rct.inference.predict import Labeler
    if path.startswith("torch"):
        return Labeler(*load_trained(folder), precision="fp32" if path == "torch fp32" else "auto")
    config, mode, labels = trained_config(folder)
    return Labeler(OnnxModel(onnx_file(folder, path.split()[1]), config), load_tokenizer(folder), mode, labels)


def breakdown(labeler, text: str) -> dict:
    """Seconds of each step of one abstract, as Labeler.label runs them."""
    from pubmed_rct.modeling.encoding import build_examples
    from pubmed_rct.modeling.batching import CPU_WIDTH, collate, cut_wide
    from pubmed_rct.modeling.model import predict_proba
    from pubmed_rct.inference.predict import split_sections
    t0 = time.perf_counter()
    sentences = [s for _, _, s in split_sections(text)]
    t1 = time.perf_counter()
    ids = labeler.token_ids(sentences)
    t2 = time.perf_counter()
    ex = build_examples(ids, [list(range(len(sentences)))], labeler.context, labeler.max_length,
                        labeler.context_max_length, labeler.cls, labeler.sep)
    examples = [dict(zip(ex, v)) for v in zip(*ex.values())]
    t3 = time.perf_counter()
    collate(examples, labeler.tokenizer.pad_token_id, 1)  # the padding alone, as predict_proba does it
    t4 = time.perf_counter()
    predict_proba(labeler.model, examples, labeler.context, labeler.tokenizer.pad_token_id, labeler.batch_size(),
                  labeler.precision)
    t5 = time.perf_counter()
    lengths = [len(e["input_ids"]) for e in examples]
    parts = cut_wide(sorted(range(len(lengths)), key=lengths.__getitem__), lengths, CPU_WIDTH)  # as predict_proba
    padded, real = sum(len(p) * max(lengths[i] for i in p) for p in parts), sum(lengths)
    return {"split": t1 - t0, "tokenize": t2 - t1, "pad": t4 - t2,  # inputs built and padded
            "forward": (t5 - t4) - (t4 - t3),  # predict_proba less the padding it does itself
            "padded": padded / real}  # tokens fed / real tokens


def child(args) -> None:
    """One (folder, path): its figures as one JSON line."""
    ten, batch = texts(args.data, args.single, args.abstracts)
    labeler = labeler_for(args.folder, args.path)
    labeler.label(ten[:2])  # warm up
    times = []
    for t in ten:
        start = time.perf_counter()
        labeler.label([t])
        times.append(time.perf_counter() - start)
    parts = [breakdown(labeler, t) for t in ten]
    start = time.perf_counter()  # as `predict --jsonl`: chunks of 32 abstracts
    list(labeler.label_chunks([batch[i:i + 32] for i in range(0, len(batch), 32)]))
    rate = len(batch) / (time.perf_counter() - start)
    q = statistics.quantiles(times, n=20)
    print(json.dumps({"p50": statistics.median(times), "p95": q[18], "rate": rate,
                      "parts": {k: statistics.median(p[k] for p in parts) for k in parts[0]},
                      "peak_mib": peak_rss_mib()}))


def peak_rss_mib() -> float:
    """This process's peak resident memory (VmHWM: ru_maxrss would carry the parent's over fork and exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_flags() -> str:
    flags = set(Path("/proc/cpuinfo").read_text().split())
    return ", ".join(f for f in ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_bf16", "amx_int8")
                     if f in flags)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True, help="MiniLM folder (pretrained encoder; head untrained: speed only)")
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared/data/nicta-piboso/test.txt"))
    ap.add_argument("--abstracts", type=int, default=200)
    ap.add_argument("--single", type=int, default=30)
    ap.add_argument("--shapes", nargs="+", default=["MiniLM", "BERT-base"])
    ap.add_argument("--modes", nargs="+", default=["none", "abstract"])
    ap.add_argument("--paths", nargs="+", default=list(PATHS))
    ap.add_argument("--folder", help=argparse.SUPPRESS)  # child process: one model folder ...
    ap.add_argument("--path", help=argparse.SUPPRESS)  # ... and one path
    args = ap.parse_args()
    if args.folder:
        return child(args)
    import torch

    from pubmed_rct.corpus.sources import read_text_file
    from pubmed_rct.modeling.model import build_model, load_tokenizer
    from pubmed_rct.modeling.spec import Spec
    from pubmed_rct.inference.onnx_runtime import export, onnx_file
    ten, batch = texts(args.data, args.single, args.abstracts)
    labels = sorted({r["label"] for r in read_text_file(args.data)})
    print(f"CPU: {os.cpu_count()} cores, flags {cpu_flags()}; torch threads {torch.get_num_threads()}; single: "
          f"{len(ten)} abstracts of 10 sentences; batch: {len(batch)} abstracts, chunks of 32", flush=True)
    print("| model | context | path | p50 ms | p95 ms | split / tokenize / pad / forward ms (padded×) | "
          "batch abstracts/s | file MiB | peak RSS MiB |\n|---|---|---|---|---|---|---|---|---|", flush=True)
    for shape in args.shapes:
        for mode in args.modes:
            with tempfile.TemporaryDirectory() as folder:
                if shape == "MiniLM":
                    build_model(args.model, labels, Spec(mode, 128, 512, "digits")).save_pretrained(folder)
                    load_tokenizer(args.model).save_pretrained(folder)
                else:
                    bert_base_dir(args.model, mode, labels, folder)
                sizes = {"torch": (Path(folder) / "model.safetensors").stat().st_size}
                sizes["torch fp32"] = sizes["torch"]
                for precision in ("fp32", "int8"):
                    if f"ORT {precision}" in args.paths:
                        export(folder, precision)
                        sizes[f"ORT {precision}"] = onnx_file(folder, precision).stat().st_size
                for path in args.paths:
                    out = subprocess.run([sys.executable, __file__, "--model", args.model, "--folder", folder, "--path", path, "--data",
                                          args.data, "--single", str(args.single), "--abstracts", str(args.abstracts)],
                                         capture_output=True, text=True)
                    if out.returncode:
                        sys.exit(f"{shape} {mode} {path} failed:\n{out.stderr[-3000:]}")
                    r = json.loads(out.stdout.strip().splitlines()[-1])
                    p = {k: 1e3 * v for k, v in r["parts"].items() if k != "padded"}
                    print(f"| {shape} | {mode} | {path} | {1e3 * r['p50']:.0f} | {1e3 * r['p95']:.0f} | "
                          f"{p['split']:.1f} / {p['tokenize']:.1f} / {p['pad']:.1f} / {p['forward']:.0f} "
                          f"({r['parts']['padded']:.2f}×) | {r['rate']:.1f} | {sizes[path] / 2 ** 20:.0f} | "
                          f"{r['peak_mib']:.0f} |", flush=True)


if __name__ == "__main__":
    main()
