"""Text as people paste it, made the text a model reads: one Unicode clean-up for raw text and corpora alike.

Copied from PDFs and journal pages, abstracts carry no-break and thin spaces (between a number and its unit),
zero-width spaces, soft hyphens, byte-order marks, full-width characters and ligatures. `clean` turns the
space-like characters into spaces, drops the invisible format characters, and folds full-width forms and
ligatures to their plain letters and digits. Superscripts, subscripts and other compatibility forms are kept:
folding them changes meaning (m² is not m2, 10⁻³ is not 10-3). Control characters are left for the caller to
refuse (`sentences.check_text`).
"""
from __future__ import annotations

import re
import unicodedata

LINE_BREAKS = re.compile("[\u2028\u2029\x85]")  # line and paragraph separators, next line
FOLDED = re.compile("[\uff01-\uff5e\ufb00-\ufb06]")  # full-width ASCII forms, Latin ligatures (NFKC to ASCII)


def _space_or_invisible(ch: str) -> str:
    category = unicodedata.category(ch)
    if category == "Zs":  # no-break, thin, narrow no-break, figure, ideographic... spaces
        return " "
    if category == "Cf":  # zero-width space/joiners, soft hyphen, byte-order mark, direction marks
        return ""
    return ch


def clean(text: str) -> str:
    """`text` with space-like characters as spaces, invisible format characters dropped, full-width forms and
    ligatures folded; plain ASCII text comes back unchanged (and fast)."""
    if text.isascii():
        return text
    text = LINE_BREAKS.sub("\n", text)
    text = "".join(_space_or_invisible(ch) if not ch.isascii() else ch for ch in text)
    return FOLDED.sub(lambda m: unicodedata.normalize("NFKC", m.group()), text)


def utf8_fault(error: UnicodeDecodeError, offset: int = 0, unit: str = "offset") -> str:
    """Where bytes stop being UTF-8, as every message about it says it: `byte 0xe9 at offset 3` (`unit` column:
    counted from 1); `offset`: where the decoded bytes began in the file."""
    at = offset + error.start + (unit == "column")
    return f"byte {error.object[error.start]:#04x} at {unit} {at}"
