"""tokenize stage: the model's fast tokenizer, batched; truncation at max_length; no padding on disk.

(Named tokenization.py: a script named tokenize.py would shadow the standard library's tokenize.)
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this project's package, also in DVC's temp copies

from pubmed_rct import params
from pubmed_rct.corpus.sources import SPLITS, abstracts_of
from pubmed_rct.corpus.store import read_split
from pubmed_rct.modeling.encoding import build_examples, examples_table, special_ids, tokenize_sentences, truncation_stats
from pubmed_rct.io import atomic_path, run_stage, write_json, write_parquet
from pubmed_rct.corpus.labels import read_labels
from pubmed_rct.modeling.model import load_tokenizer

PREPARED, OUT, METRICS = "data/prepared", "data/tokenized", "metrics/tokenize.json"


def main() -> None:
    p = params.load()
    tokenizer = load_tokenizer(p.model)
    cls, sep = special_ids(tokenizer)
    label_id = {l: i for i, l in enumerate(read_labels(f"{PREPARED}/labels.json"))}
    metrics = {"context": p.context}
    with atomic_path(OUT) as tmp:
        tmp.mkdir()
        for split in SPLITS:
            rows = read_split(f"{PREPARED}/{split}.parquet")
            ids = tokenize_sentences(tokenizer, [r["text"] for r in rows])
            ex = build_examples(ids, abstracts_of(rows), p.context, p.max_length, p.tokenize.context_max_length,
                                cls, sep, labels=[label_id[r["label"]] for r in rows],
                                in_loss=[r["in_loss"] for r in rows])
            write_parquet(examples_table(ex), tmp / f"{split}.parquet")
            stats = truncation_stats(ids, p.max_length)
            metrics.update({f"{split}_{k}": round(v, 6) for k, v in stats.items()})
            metrics[f"{split}_inputs"] = len(ex["input_ids"])
    write_json(METRICS, metrics)
    print(f"tokenize: {metrics}")


if __name__ == "__main__":
    run_stage(main)
