"""Tokenize-stage speed: the stage's own work (tokenize, build inputs, write Parquet), timed step by step
on real abstract sentences repeated to --sentences (default: PubMed 200k RCT's train split, 2.2M).

  python benchmarks/tokenize_speed.py --tokenizer MODEL_DIR [--sentences 2211861] [--mode none]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pyarrow.parquet as pq

from pubmed_rct.corpus.sources import abstracts_of, read_text_file
from pubmed_rct.modeling.encoding import build_examples, examples_table, gc_paused, special_ids, tokenize_sentences

PUBMED_200K = 2_211_861  # sentences in PubMed 200k RCT's train split (Dernoncourt & Lee 2017)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tokenizer", required=True)
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared/data/nicta-piboso/train.txt"))
    ap.add_argument("--sentences", type=int, default=PUBMED_200K)
    ap.add_argument("--mode", choices=("none", "abstract"), default="none")
    ap.add_argument("--reference", type=int, default=220_000,
                    help="also time transformers' tokenizer(texts) call on this many sentences (0: skip)")
    args = ap.parse_args()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "true")
    from transformers import AutoTokenizer
    tok = AutoTokenizer.from_pretrained(args.tokenizer)
    base = read_text_file(args.data)
    # a copy of each abstract gets its own id, as a real split's abstracts have
    rows = [dict(r, abstract_id=f"{r['abstract_id']}.{k}") for k in range(args.sentences // len(base) + 1) for r in base]
    rows = rows[: args.sentences]
    texts = [r["text"] for r in rows]
    print(f"{len(texts):,} sentences, mode {args.mode}, {os.cpu_count()} CPUs, tokenizer {Path(args.tokenizer).name}")
    print(f"{'step':44s} {'seconds':>8s} {'sentences/s':>12s}")

    def show(name: str, seconds: float, n: int = len(texts)) -> None:
        print(f"{name:44s} {seconds:8.2f} {n / seconds:12,.0f}", flush=True)

    if args.reference:
        with gc_paused():
            start = time.perf_counter()
            for s in range(0, args.reference, 20_000):
                tok(texts[s:min(s + 20_000, args.reference)], add_special_tokens=False,
                    return_attention_mask=False, return_token_type_ids=False)
        show(f"reference: tokenizer(texts), first {args.reference:,}", time.perf_counter() - start, args.reference)
    total = time.perf_counter()
    start = time.perf_counter()
    ids = tokenize_sentences(tok, texts)
    show("tokenize_sentences", time.perf_counter() - start)
    start = time.perf_counter()
    cls, sep = special_ids(tok)
    ex = build_examples(ids, abstracts_of(rows), args.mode, 128, 512, cls, sep, labels=[0] * len(rows))
    show("build_examples", time.perf_counter() - start)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        pq.write_table(examples_table(ex), f"{tmp}/train.parquet")
        size = os.path.getsize(f"{tmp}/train.parquet")
    show(f"Arrow table + Parquet ({size / 1e6:.0f} MB)", time.perf_counter() - start)
    show("all of the above", time.perf_counter() - total)


if __name__ == "__main__":
    main()
