"""Evaluation: F1 scores, the classification report and the confusion matrix."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from sklearn.metrics import accuracy_score, classification_report, confusion_matrix, f1_score

from ..io import atomic_path


def scores(y_true: list[int], y_pred: list[int], labels: list[str], prefix: str) -> dict[str, float]:
    """Accuracy, macro / micro / support-weighted F1 and per-class F1, keys prefixed `prefix_`."""
    ids = list(range(len(labels)))
    out = {
        f"{prefix}_accuracy": accuracy_score(y_true, y_pred),
        f"{prefix}_macro_f1": f1_score(y_true, y_pred, labels=ids, average="macro", zero_division=0),
        f"{prefix}_micro_f1": f1_score(y_true, y_pred, labels=ids, average="micro", zero_division=0),
        f"{prefix}_weighted_f1": f1_score(y_true, y_pred, labels=ids, average="weighted", zero_division=0),
    }
    per_class = f1_score(y_true, y_pred, labels=ids, average=None, zero_division=0)
    out.update({f"{prefix}_f1_{label.replace(' ', '_')}": float(f) for label, f in zip(labels, per_class)})
    return {k: round(float(v), 6) for k, v in out.items()}


def report(y_true: list[int], y_pred: list[int], labels: list[str]) -> str:
    return classification_report(y_true, y_pred, labels=list(range(len(labels))), target_names=labels,
                                 digits=4, zero_division=0)


def confusion_rows(y_true: list[int], y_pred: list[int], labels: list[str]) -> list[dict]:
    """One row per sentence, the shape `dvc plots` needs for its confusion template."""
    return [{"actual": labels[t], "predicted": labels[p]} for t, p in zip(y_true, y_pred)]


def plot_confusion(y_true: list[int], y_pred: list[int], labels: list[str], path: str | Path, title: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    matrix = confusion_matrix(y_true, y_pred, labels=list(range(len(labels))))
    share = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(1.2 * len(labels) + 3, 1.0 * len(labels) + 2.5))
    ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(labels)), labels, rotation=35, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("actual")
    ax.set_title(title)
    for i in range(len(labels)):
        for j in range(len(labels)):
            ax.text(j, i, f"{matrix[i, j]}", ha="center", va="center",
                    color="white" if share[i, j] > 0.5 else "black", fontsize=9)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)


def write_evaluation(folder: str, test: tuple[list[int], list[int]], labels: list[str], context: str) -> None:
    """The test split's classification report, confusion matrix as CSV (dvc plots) and as a picture."""
    import csv
    import io
    from ..io import write_text
    y_true, y_pred = test
    write_text(f"{folder}/classification_report.txt", f"test split, context: {context}\n\n" +
               report(y_true, y_pred, labels))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=["actual", "predicted"])
    writer.writeheader()
    writer.writerows(confusion_rows(y_true, y_pred, labels))
    write_text(f"{folder}/confusion.csv", buffer.getvalue())
    plot_confusion(y_true, y_pred, labels, f"{folder}/confusion_matrix.png", f"test, context: {context}")
