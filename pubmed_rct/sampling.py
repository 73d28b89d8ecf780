"""Downsampling the training split against class imbalance."""
from __future__ import annotations

import random
from collections import Counter, defaultdict

STRATEGIES = ("minority",)


def downsample(rows: list[dict], strategy: str, seed: int) -> list[bool]:
    """Which training rows to keep: with 'minority', every class is cut to the rarest class's count.

    Returns a mask in row order, so abstracts keep their order; the choice depends only on rows and seed.
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"params.yaml downsample.strategy: '{strategy}' is not one of {STRATEGIES}")
    by_label: dict[str, list[int]] = defaultdict(list)
    for i, r in enumerate(rows):
        by_label[r["label"]].append(i)
    target = min(len(v) for v in by_label.values())
    rng = random.Random(seed)
    keep = [False] * len(rows)
    for label in sorted(by_label):
        for i in rng.sample(by_label[label], target):
            keep[i] = True
    return keep


def class_counts(rows: list[dict], mask: list[bool] | None = None) -> dict[str, int]:
    counts = Counter(r["label"] for i, r in enumerate(rows) if mask is None or mask[i])
    return dict(sorted(counts.items()))
