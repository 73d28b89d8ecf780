"""A labelled abstract shown to a person: text (coloured on a terminal), Markdown or JSON, grouped by role, a
structured abstract's own heading where it begins."""
from __future__ import annotations

import json

from ..text.sections import sections

COLOURS = ["\033[36m", "\033[35m", "\033[33m", "\033[32m", "\033[34m", "\033[31m", "\033[37m"]
RESET, BOLD = "\033[0m", "\033[1m"


def render(sentences: list[dict], fmt: str, labels: list[str], colour: bool = False) -> str:
    """The labelled abstract as JSON, Markdown or text; a structured abstract's own heading is shown where it
    begins, in the role's section."""
    if fmt == "json":
        return json.dumps({"sentences": sentences, "sections": sections(sentences)}, indent=2)
    lines, heading = [], None
    for sec in sections(sentences):
        title = sec["label"].upper()
        shown = []
        for s in sec["sentences"]:
            new = s.get("heading") if s.get("heading") not in (None, heading) else None
            heading = s.get("heading", heading)
            shown.append((new, s))
        if fmt == "markdown":
            lines.append(f"**{title}:** " + " ".join((f"_{new}:_ " if new else "") + s["sentence"]
                                                      for new, s in shown) + "\n")
            continue
        c = COLOURS[labels.index(sec["label"]) % len(COLOURS)] if colour else ""
        lines.append(f"{BOLD if colour else ''}{c}{title}:{RESET if colour else ''}")
        for new, s in shown:
            if new:
                lines.append(f"  [{new}]")
            lines.append(f"  {c}{s['sentence']}{RESET if colour else ''}  ({s['probability']:.2f})")
    return "\n".join(lines)
