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


def split_sentences(text: str) -> list[str]:
    """Sentences of an abstract in order. Line breaks inside a paragraph are spaces; blank lines end one."""
    text = check_text(text)
    sentences = []
    for paragraph in re.split(r"\n\s*\n", text):
        flat = re.sub(r"\s+", " ", paragraph).strip()
        if flat:
            sentences.extend(s.strip() for s in _segmenter().segment(flat) if s.strip())
    return sentences
