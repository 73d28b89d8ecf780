"""Tokenize-stage speed: sentences/s of the fast tokenizer, batched, and of the whole stage's work
(tokenize + build inputs + write Parquet), on real abstract sentences repeated to --sentences.

  python benchmarks/tokenize_speed.py --tokenizer MODEL_DIR [--sentences 220000]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pyarrow as pa
import pyarrow.parquet as pq

from pubmed_rct.abstracts import abstracts_of, read_text_file
from pubmed_rct.encoding import build_examples, special_ids, tokenize_sentences

PUBMED_200K = 2_211_861  # sentences in PubMed 200k RCT's train split (Dernoncourt & Lee 2017)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tokenizer", required=True)
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared/data/nicta-piboso/train.txt"))
    ap.add_argument("--sentences", type=int, default=220_000)
    args = ap.parse_args()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "true")
    from transformers import AutoTokenizer
    tok = AutoTokenizer.from_pretrained(args.tokenizer)
    rows = read_text_file(args.data)
    rows = (rows * (args.sentences // len(rows) + 1))[: args.sentences]
    texts = [r["text"] for r in rows]
    print(f"{len(texts):,} sentences ({os.cpu_count()} CPUs), tokenizer {Path(args.tokenizer).name}")
    print(f"{'step':34s} {'seconds':>8s} {'sentences/s':>12s} {'PubMed 200k train (est.)':>26s}")

    def show(name: str, seconds: float) -> None:
        rate = len(texts) / seconds
        print(f"{name:34s} {seconds:8.2f} {rate:12,.0f} {PUBMED_200K / rate:24.0f} s")

    start = time.perf_counter()
    ids = tokenize_sentences(tok, texts)
    show("fast tokenizer, batches of 20,000", time.perf_counter() - start)
    start = time.perf_counter()
    cls, sep = special_ids(tok)
    for mode in ("none", "abstract"):
        ex = build_examples(ids, abstracts_of(rows), mode, 128, 512, cls, sep, labels=[0] * len(rows))
        with tempfile.TemporaryDirectory() as tmp:
            pq.write_table(pa.table({k: pa.array(v, pa.list_(pa.int32())) for k, v in ex.items()}), f"{tmp}/t.parquet")
    show("build inputs + Parquet (both modes)", (time.perf_counter() - start) / 2)


if __name__ == "__main__":
    main()
