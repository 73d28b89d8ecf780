"""prepare: label maps from the data, optional downsampling of train; abstracts stay whole and ordered.

Downsampling marks rows with `in_loss`: context: none drops the others; context: abstract keeps them
as context that is not in the loss, so abstracts stay whole. metrics/data.json holds the class counts
before and after, and the loss weights that train.class_weights gives them (train computes the same).
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this project's package, also in DVC's temp copies

from pubmed_rct import params
from pubmed_rct.corpus.sources import SPLITS
from pubmed_rct.corpus.store import read_split, write_split
from pubmed_rct.io import atomic_path, run_stage, write_json
from pubmed_rct.corpus.labels import label_set, write_labels
from pubmed_rct.corpus.sampling import class_counts, class_weights, downsample

RAW, OUT, METRICS = "data/raw", "data/prepared", "metrics/data.json"


def main() -> None:
    p = params.load()
    splits = {s: read_split(f"{RAW}/{s}.parquet") for s in SPLITS}
    labels = label_set(splits)
    masks = {s: [True] * len(rows) for s, rows in splits.items()}
    if p.use_downsampling:
        masks["train"] = downsample(splits["train"], p.downsample.strategy, p.seed, p.downsample.cap)
    metrics = {"labels": len(labels)}
    for s, rows in splits.items():
        metrics[f"{s}_sentences"] = sum(masks[s])
        metrics[f"{s}_counts_before"] = class_counts(rows)
        metrics[f"{s}_counts"] = class_counts(rows, masks[s])
    weights = class_weights([metrics["train_counts"][label] for label in labels], p.train.class_weights)
    metrics["class_weights"] = dict(zip(labels, weights)) if weights else "none"
    with atomic_path(OUT) as tmp:
        tmp.mkdir()
        for s, rows in splits.items():
            write_split(tmp / f"{s}.parquet", rows, {"in_loss": masks[s]})
        write_labels(tmp / "labels.json", labels)
    write_json(METRICS, metrics)
    print(f"prepare: labels {labels}; train sentences in loss {metrics['train_sentences']}")


if __name__ == "__main__":
    run_stage(main)
