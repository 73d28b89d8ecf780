"""Section headings of structured abstracts and the category each stands for (BACKGROUND, OBJECTIVE, METHODS,
RESULTS, CONCLUSIONS): the labels PubMed 20k/200k RCT were made from.

The list is NLM's own: `data/nlm_headings.txt` is the U.S. National Library of Medicine's Structured Abstracts
label file of 2013-11-06 (`Structured-Abstracts-Labels-110613.txt`, 2,455 headings, `LABEL|CATEGORY|flag|date`),
as kept in NLM's public repository lhncbc/skr-consort (resources/). MEDLINE stores the category of each
section of a structured abstract as `NlmCategory`; this file maps the headings authors write to it. A newer
release of the file has the same format and can replace it.
"""
from __future__ import annotations

import re
from functools import lru_cache
from importlib import resources

CATEGORIES = ("BACKGROUND", "OBJECTIVE", "METHODS", "RESULTS", "CONCLUSIONS")
NLM_FILE = "data/nlm_headings.txt"  # in pubmed_rct/ (read through importlib.resources: also from a zip)


def key(heading: str) -> str:
    """A heading as looked up: lower case, one space between words, no closing colon or stop."""
    return " ".join(heading.lower().split()).rstrip(":.- ")


@lru_cache(maxsize=1)
def nlm_categories() -> dict[str, str]:
    """NLM's headings (looked-up form) and their categories."""
    out = {}
    for line in resources.files("pubmed_rct").joinpath(NLM_FILE).read_text(encoding="utf-8").splitlines():
        label, _, rest = line.partition("|")
        category = rest.partition("|")[0].strip().upper()
        if label.strip() and category in CATEGORIES:
            out[key(label)] = category
    return out


def category(heading: str | None) -> str | None:
    """The category of a section heading (`RESULT(S)` → RESULTS), or None for one NLM does not list."""
    if not heading:
        return None
    return nlm_categories().get(key(heading))


def nlm_pattern() -> str:
    """NLM's headings in upper case, as PubMed prints them, as one case-sensitive regular-expression group
    (longest first, any run of spaces between words): `RESULT(S)` is a heading, `exposure` is a word."""
    names = sorted((k.upper() for k in nlm_categories()), key=len, reverse=True)
    return "(?-i:" + "|".join(re.escape(n).replace(r"\ ", r"\s+") for n in names) + ")"
