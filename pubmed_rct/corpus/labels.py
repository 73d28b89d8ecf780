"""The label maps: derived once from the training data, then read by every later stage."""
from __future__ import annotations

from pathlib import Path

from .store import DataError
from ..io import read_json, write_json


def label_set(splits: dict[str, list[dict]]) -> list[str]:
    """Sorted labels of the training split; validation/test may not introduce new ones."""
    labels = sorted({r["label"] for r in splits["train"]})
    for split, rows in splits.items():
        unknown = sorted({r["label"] for r in rows} - set(labels))
        if unknown:
            raise DataError(f"{split} split: label(s) {unknown} never occur in train, so the model cannot learn them")
    return labels


def write_labels(path: str | Path, labels: list[str]) -> None:
    write_json(path, {"id2label": {str(i): l for i, l in enumerate(labels)},
                      "label2id": {l: i for i, l in enumerate(labels)}})


def read_labels(path: str | Path) -> list[str]:
    """Labels in id order."""
    id2label = read_json(path)["id2label"]
    return [id2label[str(i)] for i in range(len(id2label))]
