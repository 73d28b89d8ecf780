"""agreement.json (with --relabel): the model's labels against the authors' own, on every sentence under a
structured abstract's heading whose NlmCategory is one of the five: the check to run on a new PubMed release."""
from __future__ import annotations

from ..text.headings import CATEGORIES
from . import parts


def agreement(out: str, manifest: dict, write, options: dict | None = None) -> str:
    """Score the parts the manifest lists, hand the report to `write(name, data)`; the one-line summary."""
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score
    gold, pred = [], []
    for entry in manifest["inputs"].values():
        for name in entry["parts"]:
            t = parts.read(out, name, ["label", "heading_category"], options).to_pydict()
            for label, category in zip(t["label"], t["heading_category"]):
                if category:
                    gold.append(category)
                    pred.append(label.upper())
    labels = [c for c in CATEGORIES if c in set(gold) | set(pred)]
    report = {"sentences": len(gold), "labels": labels, "accuracy": None, "macro_f1": None, "f1": {},
              "confusion": {"rows_authors_columns_model": labels, "matrix": []}, "model": manifest["model"]}
    if gold:
        per_class = f1_score(gold, pred, labels=labels, average=None, zero_division=0)
        report.update(accuracy=round(accuracy_score(gold, pred), 4),
                      macro_f1=round(f1_score(gold, pred, labels=labels, average="macro", zero_division=0), 4),
                      f1=dict(zip(labels, (round(float(x), 4) for x in per_class))))
        report["confusion"]["matrix"] = confusion_matrix(gold, pred, labels=labels).tolist()
    where = write("agreement.json", report)
    if not gold:
        return "agreement: no sentence under an author's category (structured abstracts) to compare"
    return (f"agreement with the authors on {len(gold):,} sentences: accuracy {report['accuracy']:.4f}, macro-F1 "
            f"{report['macro_f1']:.4f} ({where})")
