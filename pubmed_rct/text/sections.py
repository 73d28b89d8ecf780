"""A labelled abstract as sections: consecutive sentences of one role together (the CLI's and the page's view)."""
from __future__ import annotations


def sections(sentences: list[dict]) -> list[dict]:
    """Consecutive sentences of the same label as one section."""
    out: list[dict] = []
    for s in sentences:
        if out and out[-1]["label"] == s["label"]:
            out[-1]["sentences"].append(s)
        else:
            out.append({"label": s["label"], "sentences": [s]})
    return out
