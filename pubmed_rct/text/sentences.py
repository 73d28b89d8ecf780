"""Splitting a plain-text abstract into sentences (pysbd, which knows `p < 0.05.`, `et al.`, `Fig. 2`...)."""
from __future__ import annotations

import re
import threading
import unicodedata

from . import headings
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
    try:  # a lone surrogate (JSON "\\ud800", bytes read with surrogateescape) is no character; tokenizers fail on it
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        raise InputError(f"the text is not valid Unicode: a lone surrogate U+{ord(text[e.start]):04X} at character "
                         f"{e.start + 1:,}; send UTF-8 text (in JSON, a \\uD800-\\uDFFF escape only as half of a "
                         "pair)") from None
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
    "background and aims", "background and objectives", "background and purpose", "aims and objectives",
]
_NAMES = "|".join(re.escape(h).replace(r"\ ", r"\s+") for h in sorted(HEADINGS, key=len, reverse=True))
# With punctuation after it (`RESULT(S):`, `MATERIAL AND METHODS.`) or alone on its line, any of NLM's 2,455
# headings in upper case is one (headings.py); capitalised, or bare before a capitalised word, only the common
# names above are ("The results: were good." and "exposure." stay text).
_MARKED = f"{headings.nlm_pattern()}|{_NAMES}"
# At the start of a line: alone on it (":" or "." allowed), followed by ":", "." or a dash, or followed by a
# capitalised word with nothing between (a heading set in bold, as PDFs paste); after a sentence's end inside a
# paragraph: followed by ":" or "." (a colon, or a one-word "sentence", makes a capitalised word a heading).
_HEADING = re.compile(
    rf"(?im)^[ \t]*(?P<alone>{_MARKED})[ \t]*[:.]?[ \t]*$"
    rf"|^[ \t]*(?P<start>{_MARKED})[ \t]*(?:[:.]|[-\u2013\u2014]{{1,2}}(?=\s))[ \t]*"
    rf"|^[ \t]*(?P<bare>{_NAMES})[ \t]+(?-i:(?=[A-Z](?![A-Z])))"
    rf"|(?<=[.!?])[ \t]+(?P<inline>{_MARKED})[ \t]*(?::|\.(?=\s))[ \t]*")


def _is_heading_case(words: str) -> bool:
    """Upper case (METHODS) or capitalised (Methods, Materials and methods): not a lower-case word in a sentence."""
    return words[:1].isupper() and (words.isupper() or not words[1:].isupper())


def paragraphs(text: str) -> list[tuple[str | None, str]]:
    """(heading, paragraph) pairs of an abstract in order, a paragraph's line breaks made spaces: a structured
    abstract's section headings are taken out and given with each paragraph under them (None before the
    first). Blank lines end a paragraph."""
    text = check_text(text)
    parts: list[tuple[str | None, str]] = []
    heading, start = None, 0
    for m in _HEADING.finditer(text):
        name = m.group("alone") or m.group("start") or m.group("bare") or m.group("inline")
        if not _is_heading_case(name):
            continue
        parts.append((heading, text[start:m.start()]))
        heading, start = " ".join(name.split()), m.end()
    parts.append((heading, text[start:]))
    return [(heading, flat) for heading, chunk in parts for paragraph in re.split(r"\n\s*\n", chunk)
            if (flat := re.sub(r"\s+", " ", paragraph).strip())]


# Abbreviations that never end a sentence in an abstract ("vs. placebo", "approx. 30", "cf. ref. 14", "Dr. Patel").
_NEVER_FINAL = {"approx", "ca", "cf", "vs", "e.g", "i.e", "dr", "prof", "mr", "mrs", "ms", "st", "fig", "figs",
                "ref", "refs", "eq", "no", "nos", "incl", "viz", "al.,"}
# Abbreviations that end a sentence only when the next one starts with a word ("12 wk. The", but "wk. 2").
_BEFORE_NUMBERS = {"wk", "wks", "mo", "mos", "yr", "yrs", "d", "h", "hr", "hrs", "min", "mins", "sec", "vol", "p"}
_LAST_WORD = re.compile(r"(?:^|[\s(\[/-])([A-Za-z][A-Za-z.]*)\.$")
# Inside a segment: ". " then a capitalised word (not an acronym), after a word that is not an abbreviation.
_MISSED_END = re.compile(r"(?<=\.)\s+(?=[A-Z][a-z]|[A-Z]\s)")


def _last_word(sentence: str) -> str:
    m = _LAST_WORD.search(sentence)
    return m.group(1).lower() if m else ""


def _joins(previous: str, following: str) -> bool:
    """Whether a segmenter's break between two pieces falls inside one sentence."""
    if following[:1] in ",;:)]%":
        return True  # no sentence starts with these
    if not re.search(r"[.!?][\"')\]\u201d\u2019]*$", previous):
        return True  # nor does one end without a stop ("compared | (i) metformin, | (ii) ...")
    word = _last_word(previous)
    if following[:1].islower():  # after an abbreviation ("yrs. of age", "2 g i.v. or"), not after a word
        return word in _NEVER_FINAL | _BEFORE_NUMBERS or "." in word or len(word) == 1
    return word in _NEVER_FINAL or (word in _BEFORE_NUMBERS | {"no"} and following[:1].isdigit())


def _ends_here(text: str, dot: int) -> bool:
    """Whether the '.' at text[dot] ends a sentence, the next word being capitalised."""
    word = _last_word(text[:dot + 1])
    dotted = re.search(r"(?:\b[A-Za-z]\.){2,}$", text[:dot + 1])  # U.S., e.g., b.i.d.: an abbreviation
    if len(word) == 1:  # "for drug B." ends a sentence; initials ("Voss, A. Reinhart", "S. M. Wolinsky") do not
        return bool(re.search(r"[a-z0-9]\s+[A-Za-z]\.$", text[:dot + 1]))
    return bool(word) and word not in _NEVER_FINAL and not dotted and word != "al"


def _spans(paragraph: str, pieces: list[str]) -> list[tuple[int, int]] | None:
    """Where each of a segmenter's pieces lies in the paragraph, in order; None when they do not cover it
    (a segmenter that changed the text)."""
    spans, cursor = [], 0
    for piece in (p.strip() for p in pieces if p.strip()):
        at = paragraph.find(piece, cursor)
        if at < 0 or paragraph[cursor:at].strip():
            return None
        spans.append((at, at + len(piece)))
        cursor = at + len(piece)
    return spans if not paragraph[cursor:].strip() else None


def repair(paragraph: str, pieces: list[str]) -> list[str]:
    """A segmenter's sentences of the paragraph mended with what abstracts need: pieces split after an
    abbreviation that does not end a sentence (approx., no., cf., vs., "wk. 2") joined again; sentences run
    together after a word the segmenter took for an abbreviation ("for drug B. Adverse events", "at 24 h.
    Atrial") split. The sentences are the paragraph's own characters, spacing included; pieces that are not
    the paragraph's own text come back as they are."""
    spans = _spans(paragraph, pieces)
    if spans is None:  # never drop text: the segmenter's own pieces, unrepaired
        return [p.strip() for p in pieces if p.strip()]
    joined: list[list[int]] = []
    for start, end in spans:
        if joined and _joins(paragraph[joined[-1][0]:joined[-1][1]], paragraph[start:end]):
            joined[-1][1] = end
        else:
            joined.append([start, end])
    out = []
    for start, end in joined:
        sentence, cut = paragraph[start:end], 0
        for m in _MISSED_END.finditer(sentence):
            if _ends_here(sentence, m.start() - 1) and not _joins(sentence[cut:m.start()], sentence[m.end():]):
                out.append(sentence[cut:m.start()])
                cut = m.end()
        out.append(sentence[cut:])
    return out


def segment(paragraph: str) -> list[str]:
    """Sentences of one paragraph (no line breaks, no headings): pysbd's, repaired."""
    return repair(paragraph, _segmenter().segment(paragraph))


def split_abstract(text: str) -> list[tuple[str | None, str]]:
    """(heading, sentence) pairs of an abstract in order (paragraphs, then segment)."""
    out = [(heading, sentence) for heading, paragraph in paragraphs(text) for sentence in segment(paragraph)]
    if not out:
        raise InputError("the text holds only section headings; paste the abstract's sentences too")
    return out


def split_sentences(text: str) -> list[str]:
    """Sentences of an abstract in order, without its section headings (split_abstract)."""
    return [sentence for _, sentence in split_abstract(text)]
