"""Numbers at prediction time: a model trained on the `@` form (every number replaced by `@`, as in the hub's
PubMed 20k) labelling raw text that still has its digits, with and without the rewrite that predict applies.

Makes an `@` copy of a text-format corpus, trains on it with the pipeline's own functions, then labels the
original test sentences (digits kept) through the Labeler, gold sentence splits, and prints test F1 for:
  @ test text (what evaluate reports) | raw digits, rewritten to @ (predict today) | raw digits, not rewritten

  python benchmarks/number_form.py --model MODEL_DIR --data ../shared/data/nicta-piboso --seeds 1 2
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import transformers

from context_modes import encode
from pubmed_rct.corpus.sources import abstracts_of, read_text_source
from pubmed_rct.corpus.labels import label_set
from pubmed_rct.training.metrics import scores
from pubmed_rct.modeling.spec import Spec
from pubmed_rct.modeling.model import build_model, load_tokenizer
from pubmed_rct.text.numbers import AT, DIGITS, at_sign, detect
from pubmed_rct.inference.predict import Labeler
from pubmed_rct.params import shipped_train
from pubmed_rct.training.loop import train


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--data", required=True, help="a text-format corpus with digits (train.txt, dev.txt, test.txt)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[1])
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--lr", type=float, default=5e-5)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--max-length", type=int, default=128)
    args = ap.parse_args()

    raw, _ = read_text_source(args.data)
    at = {s: [{**r, "text": at_sign(r["text"])} for r in rows] for s, rows in raw.items()}
    forms = {name: detect(r["text"] for rows in splits.values() for r in rows) for name, splits in
             (("original", raw), ("@ copy", at))}
    changed = sum(r["text"] != a["text"] for r, a in zip(raw["test"], at["test"]))
    print(f"forms detected: {forms}; test sentences with a number: {changed} of {len(raw['test'])}")
    labels = label_set(at)
    tok = load_tokenizer(args.model)
    train_ex = encode(tok, at["train"], "none", labels, args.max_length, 512)
    gold = [labels.index(r["label"]) for r in raw["test"]]
    test_abstracts = [[raw["test"][i]["text"] for i in group] for group in abstracts_of(raw["test"])]
    test_at = [[at_sign(s) for s in sentences] for sentences in test_abstracts]
    results = []
    for seed in args.seeds:
        transformers.set_seed(seed)
        model = build_model(args.model, labels, Spec("none", args.max_length, 512, AT))
        start = time.perf_counter()
        train(model, train_ex, shipped_train(learning_rate=args.lr, batch_size=args.batch_size, num_epochs=args.epochs,
                                             log_every_steps=10 ** 9), "none", tok.pad_token_id, seed, progress=False)
        train_s = time.perf_counter() - start
        with tempfile.TemporaryDirectory() as folder:
            model.save_pretrained(folder)
            tok.save_pretrained(folder)
            labeler = Labeler.load(folder)
        row = {"seed": seed, "train_s": round(train_s, 1)}
        for name, texts, form in (("@ text", test_at, AT), ("digits, rewritten", test_abstracts, AT),
                                  ("digits, as given", test_abstracts, DIGITS)):
            labeler.number_form = form
            predicted = [labels.index(s["label"]) for a in labeler.label_sentences(texts) for s in a]
            s = scores(gold, predicted, labels, "test")
            row[name] = {"micro_f1": s["test_micro_f1"], "macro_f1": s["test_macro_f1"]}
        results.append(row)
        print(json.dumps(row), flush=True)
    print("\n| seed | @ test text micro / macro | digits, rewritten to @ | digits, not rewritten | train s |")
    print("|---|---|---|---|---|")
    for r in results:
        cells = [f"{r[k]['micro_f1']:.4f} / {r[k]['macro_f1']:.4f}" for k in ("@ text", "digits, rewritten",
                                                                               "digits, as given")]
        print(f"| {r['seed']} | {' | '.join(cells)} | {r['train_s']} |")


if __name__ == "__main__":
    main()
