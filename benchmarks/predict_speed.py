"""Prediction speed on this CPU: single-abstract latency (p50, p95) and batch abstracts/s,
for MiniLM and a BERT-base-sized model, in each context mode. Real abstracts from nicta-piboso test.

  python benchmarks/predict_speed.py --model MINILM_DIR [--abstracts 100] [--single 30]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch

from pubmed_rct.abstracts import abstracts_of, read_text_file
from pubmed_rct.model import build_model, load_tokenizer
from pubmed_rct.predict import Labeler


def bert_base_dir(tokenizer_dir: str, mode: str, labels: list[str], tmp: str) -> str:
    """A randomly initialised BERT-base (SciBERT's size) saved with the MiniLM tokenizer: speed only."""
    from transformers import AutoModelForSequenceClassification, AutoModelForTokenClassification, BertConfig
    cls = AutoModelForSequenceClassification if mode == "none" else AutoModelForTokenClassification
    model = cls.from_config(BertConfig(vocab_size=31090, num_labels=len(labels)))
    model.config.sentence_context = mode
    model.save_pretrained(tmp)
    load_tokenizer(tokenizer_dir).save_pretrained(tmp)
    return tmp


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True, help="MiniLM folder (pretrained encoder; head untrained: speed only)")
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared/data/nicta-piboso/test.txt"))
    ap.add_argument("--abstracts", type=int, default=200)
    ap.add_argument("--single", type=int, default=30)
    args = ap.parse_args()
    rows = read_text_file(args.data)
    groups = abstracts_of(rows)
    texts = [" ".join(rows[i]["text"] for i in g) for g in groups]
    ten = [t for t, g in zip(texts, groups) if len(g) == 10][: args.single]  # 10-sentence abstracts
    batch = texts[: args.abstracts]
    labels = sorted({r["label"] for r in rows})
    print(f"CPU threads {torch.get_num_threads()}, batch workers {len(os.sched_getaffinity(0))}; single: {len(ten)} abstracts of 10 sentences; "
          f"batch: {len(batch)} abstracts ({sum(len(g) for g in groups[:len(batch)])} sentences)")
    print(f"{'model':10s} {'context':9s} {'p50 ms':>8s} {'p95 ms':>8s} {'batch abstracts/s':>18s}")
    for name in ("MiniLM", "BERT-base"):
        for mode in ("none", "abstract"):
            with tempfile.TemporaryDirectory() as tmp:
                if name == "MiniLM":
                    model = build_model(args.model, labels, mode)
                    model.save_pretrained(tmp)
                    load_tokenizer(args.model).save_pretrained(tmp)
                    path = tmp
                else:
                    path = bert_base_dir(args.model, mode, labels, tmp)
                labeler = Labeler.load(path)
            labeler.label(ten[:2])  # warm up
            times = []
            for t in ten:
                start = time.perf_counter()
                labeler.label([t])
                times.append(time.perf_counter() - start)
            start = time.perf_counter()  # as `predict --jsonl`: chunks of 32 abstracts, one worker thread a core
            list(labeler.label_chunks([batch[i:i + 32] for i in range(0, len(batch), 32)]))
            rate = len(batch) / (time.perf_counter() - start)
            q = statistics.quantiles(times, n=20)
            print(f"{name:10s} {mode:9s} {1e3 * statistics.median(times):8.1f} {1e3 * q[18]:8.1f} {rate:18.1f}", flush=True)


if __name__ == "__main__":
    main()
