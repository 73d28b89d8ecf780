"""Class imbalance: downsampling the training split, or weighting the loss by inverse class frequency."""
from __future__ import annotations

import math
import random
import statistics
from collections import Counter, defaultdict

from ..choices import CLASS_WEIGHTS as WEIGHTINGS, DOWNSAMPLING as STRATEGIES


def downsample(rows: list[dict], strategy: str, seed: int, cap: int | str = "median") -> list[bool]:
    """Which training rows to keep. 'minority': every class is cut to the rarest class's count. 'cap': classes
    above `cap` sentences (a number, or 'median': the median class count) are cut to it, rarer ones kept whole.

    Returns a mask in row order, so abstracts keep their order; the choice depends only on rows and seed.
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"params.yaml downsample.strategy: '{strategy}' is not one of {STRATEGIES}")
    by_label: dict[str, list[int]] = defaultdict(list)
    for i, r in enumerate(rows):
        by_label[r["label"]].append(i)
    counts = {label: len(v) for label, v in by_label.items()}
    limit = min(counts.values()) if strategy == "minority" else cap_count(counts, cap)
    rng = random.Random(seed)
    keep = [False] * len(rows)
    for label in sorted(by_label):
        for i in rng.sample(by_label[label], min(limit, counts[label])):
            keep[i] = True
    return keep


def cap_count(counts: dict[str, int], cap: int | str) -> int:
    """The 'cap' strategy's limit: a positive number of sentences, or the median class count."""
    if cap == "median":
        return int(statistics.median(counts.values()))
    if isinstance(cap, bool) or not isinstance(cap, int) or cap < 1:
        raise ValueError(f"params.yaml downsample.cap: {cap!r} is neither a positive number of sentences nor median")
    return cap


def class_weights(counts: list[int], kind: str) -> list[float] | None:
    """Loss weights per class (in label-id order) from the training split's class counts, or None for 'none'.

    'balanced' is n / (classes x count), as scikit-learn's compute_class_weight("balanced"): the average training
    sentence weighs 1. 'sqrt' is its square root, rescaled so that the average training sentence weighs 1 too
    (the loss keeps its scale, so the learning rate means the same)."""
    if kind not in WEIGHTINGS:
        raise ValueError(f"params.yaml train.class_weights: '{kind}' is not one of {WEIGHTINGS}")
    if kind == "none":
        return None
    if not counts or min(counts) < 1:
        raise ValueError(f"class weights need every class in the training split (counts {counts})")
    n = sum(counts)
    balanced = [n / (len(counts) * c) for c in counts]
    if kind == "balanced":
        return balanced
    roots = [math.sqrt(w) for w in balanced]
    mean = sum(c * w for c, w in zip(counts, roots)) / n
    return [w / mean for w in roots]


def class_counts(rows: list[dict], mask: list[bool] | None = None) -> dict[str, int]:
    counts = Counter(r["label"] for i, r in enumerate(rows) if mask is None or mask[i])
    return dict(sorted(counts.items()))
