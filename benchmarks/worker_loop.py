"""The label job's worker loop alone (literature.worker.label_records: split, tokenize, forward), no Spark: abstracts/s
at each batch size, on the GPU where there is one (the lent GPU machine has no Spark or MLflow).

  python benchmarks/worker_loop.py --model MINILM_DIR --data nicta-piboso/test.txt [--shape bert-base]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch

from predict_speed import bert_base_dir
from pubmed_rct.corpus.sources import abstracts_of, read_text_file
from pubmed_rct.literature.worker import label_records
from pubmed_rct.inference.predict import Labeler


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True, help="MiniLM folder (its tokenizer; weights random at bert-base)")
    ap.add_argument("--data", required=True)
    ap.add_argument("--shape", default="bert-base", choices=["bert-base"])
    ap.add_argument("--abstracts", type=int, default=2000)
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=[64, 128, 256, 512, 1024])
    args = ap.parse_args()
    rows = read_text_file(args.data)
    texts = [" ".join(rows[i]["text"] for i in g) for g in abstracts_of(rows)]
    texts = (texts * (args.abstracts // len(texts) + 1))[: args.abstracts]
    records = [{"id": str(i), "position": i, "where": "", "text": t} for i, t in enumerate(texts)]
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "CPU"
    with tempfile.TemporaryDirectory() as tmp:
        labeler = Labeler.load(bert_base_dir(args.model, "none", ["a", "b", "c", "d", "e"], tmp))
        label_records(labeler, records[:64])  # warm-up
        print(f"{device}, BERT-base shape, context none, {len(records)} abstracts of NICTA-PIBOSO test")
        print("| sentences per forward | abstracts/s |\n|---|---|")
        for size in args.batch_sizes:
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            start = time.perf_counter()
            label_records(labeler, records, batch_size=size)
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            print(f"| {size} | {len(records) / (time.perf_counter() - start):.1f} |", flush=True)


if __name__ == "__main__":
    main()
