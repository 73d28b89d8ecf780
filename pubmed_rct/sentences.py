"""Splitting a plain-text abstract into sentences (pysbd, which knows `p < 0.05.`, `et al.`, `Fig. 2`...)."""
from __future__ import annotations

import re
import threading
import unicodedata

from .normalize import clean

MAX_CHARS = 20_000  # far above any real abstract (PubMed caps them near 4,000 characters)


class InputError(ValueError):
    """Text that cannot be labelled; the message says why and what to do."""


_local = threading.local()


def _segmenter():
    """One pysbd Segmenter per thread: segment() keeps the text on the instance, so sharing one between
    threads (the web server, batch prediction) would mix up two abstracts' sentences."""
    if not hasattr(_local, "segmenter"):
        import pysbd
        _local.segmenter = pysbd.Segmenter(language="en", clean=False)
    return _local.segmenter


def check_text(text: str) -> str:
    """The text cleaned (normalize.clean), or InputError saying why it cannot be labelled."""
    if not isinstance(text, str):
        raise InputError("the abstract must be text")
    text = clean(text)
    if len(text) > MAX_CHARS:
        raise InputError(f"the text has {len(text):,} characters; the limit is {MAX_CHARS:,} (one abstract)")
    controls = sum(unicodedata.category(c) == "Cc" and c not in "\n\r\t" for c in text)  # real control bytes
    if "\x00" in text or controls > len(text) // 100 + 2:
        raise InputError("the text holds binary data (control characters); paste the abstract as plain text")
    if not text.strip():
        raise InputError("the text is empty; paste an abstract")
    return text


# Section headings of structured abstracts (PubMed's and the major journals' forms), longest first when matched.
HEADINGS = [
    "background", "introduction", "context", "importance", "rationale", "objective", "objectives", "aim", "aims",
    "aim of the study", "purpose", "goal", "goals", "hypothesis", "design", "study design", "setting", "settings",
    "design and setting", "setting and participants", "design, setting, and participants",
    "design, setting and participants", "participants", "patients", "subjects", "population", "sample",
    "intervention", "interventions", "method", "methods", "materials and methods", "methods and materials",
    "patients and methods", "subjects and methods", "methodology", "measurements", "main outcome measures",
    "main outcomes and measures", "outcome measures", "outcomes", "main outcome measure", "statistical analysis",
    "results", "main results", "findings", "conclusion", "conclusions", "conclusions and relevance",
    "interpretation", "discussion", "significance", "implications", "clinical relevance", "limitations",
    "summary", "trial registration", "registration", "funding", "evidence acquisition", "evidence synthesis",
]
_NAMES = "|".join(re.escape(h).replace(r"\ ", r"\s+") for h in sorted(HEADINGS, key=len, reverse=True))
# At the start of a line: alone on it (":" or "." allowed), or followed by ":", "." or a dash; after a
# sentence's end inside a paragraph: followed by ":" only (a colon makes a capitalised word a heading).
_HEADING = re.compile(
    rf"(?im)^[ \t]*(?P<alone>{_NAMES})[ \t]*[:.]?[ \t]*$"
    rf"|^[ \t]*(?P<start>{_NAMES})[ \t]*(?:[:.]|[-\u2013\u2014](?=\s))[ \t]*"
    rf"|(?<=[.!?])[ \t]+(?P<inline>{_NAMES})[ \t]*:[ \t]*")


def _is_heading_case(words: str) -> bool:
    """Upper case (METHODS) or capitalised (Methods, Materials and methods): not a lower-case word in a sentence."""
    return words[:1].isupper() and (words.isupper() or not words[1:].isupper())


def split_abstract(text: str) -> list[tuple[str | None, str]]:
    """(heading, sentence) pairs of an abstract in order: a structured abstract's section headings are taken
    out of the sentences and given with each sentence under them (None before the first). Line breaks inside
    a paragraph are spaces; blank lines end one."""
    text = check_text(text)
    parts: list[tuple[str | None, str]] = []
    heading, start = None, 0
    for m in _HEADING.finditer(text):
        name = m.group("alone") or m.group("start") or m.group("inline")
        if not _is_heading_case(name):
            continue
        parts.append((heading, text[start:m.start()]))
        heading, start = " ".join(name.split()), m.end()
    parts.append((heading, text[start:]))
    out = []
    for heading, chunk in parts:
        for paragraph in re.split(r"\n\s*\n", chunk):
            flat = re.sub(r"\s+", " ", paragraph).strip()
            if flat:
                out.extend((heading, s.strip()) for s in _segmenter().segment(flat) if s.strip())
    if not out:
        raise InputError("the text holds only section headings; paste the abstract's sentences too")
    return out


def split_sentences(text: str) -> list[str]:
    """Sentences of an abstract in order, without its section headings (split_abstract)."""
    return [sentence for _, sentence in split_abstract(text)]
