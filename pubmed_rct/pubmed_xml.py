"""PubMed/MEDLINE XML (`pubmed26n0001.xml.gz`, the PubmedArticleSet DTD), read as a stream of citations.

Parsed with lxml's `iterparse`: each `PubmedArticle` is handed over when its end tag is read and then cleared,
with the siblings before it, so memory stays flat whatever the file's size (measured in
benchmarks/README.md, against pubmed_parser's `parse_medline_xml`, which builds the whole tree first).
"""
from __future__ import annotations

import gzip
import zlib
from dataclasses import dataclass, field
from typing import BinaryIO, Iterator

from .headings import CATEGORIES

RECORD_TAGS = ("PubmedArticle", "DeleteCitation", "PubmedBookArticle")


class XMLError(ValueError):
    """A file that is not PubMed XML or breaks off: the message names the file and where."""


@dataclass
class Citation:
    """One citation's abstract: (heading, NlmCategory if one of the five, text) per AbstractText."""
    pmid: str
    title: str
    sections: list[tuple[str | None, str | None, str]]


@dataclass
class Counts:
    citations: int = 0
    deleted: int = 0      # PMIDs in DeleteCitation
    no_abstract: int = 0
    books: int = 0        # PubmedBookArticle: not journal citations
    pmids_deleted: list[str] = field(default_factory=list)


def _text(element) -> str:
    """All text inside an element, inline markup (<i>, <sup>, <b>) included, white space folded."""
    return " ".join("".join(element.itertext()).split())


def open_xml(path: str, stream: BinaryIO | None = None) -> BinaryIO:
    """The file's bytes, gunzipped when it ends in .gz."""
    raw = stream if stream is not None else open(path, "rb")
    return gzip.GzipFile(fileobj=raw, mode="rb") if str(path).endswith(".gz") else raw


def citations(path: str, counts: Counts, stream: BinaryIO | None = None) -> Iterator[Citation]:
    """The citations with an abstract, in file order; deleted citations, books and citations without an
    abstract are counted in `counts`. A file that is not well formed or breaks off raises XMLError after the
    citations before the fault were given."""
    from lxml import etree
    f = open_xml(path, stream)
    try:
        for _, element in etree.iterparse(f, events=("end",), tag=RECORD_TAGS, resolve_entities=False,
                                          no_network=True, huge_tree=True):
            if element.tag == "DeleteCitation":
                pmids = [p.text.strip() for p in element.iter("PMID") if p.text]
                counts.deleted += len(pmids)
                counts.pmids_deleted.extend(pmids)
            elif element.tag == "PubmedBookArticle":
                counts.books += 1
            else:
                citation = _citation(element)
                if citation is None:
                    counts.no_abstract += 1
                else:
                    counts.citations += 1
                    yield citation
            element.clear()
            while element.getprevious() is not None:  # the siblings already handed over
                del element.getparent()[0]
    except etree.XMLSyntaxError as e:
        raise XMLError(f"{path}: not well-formed XML at line {e.lineno}: {e.msg}") from e
    except (EOFError, zlib.error, gzip.BadGzipFile) as e:
        raise XMLError(f"{path}: the compressed file breaks off or is damaged ({e}); download it again") from e
    finally:
        f.close()


def _citation(article) -> Citation | None:
    citation = article.find("MedlineCitation")
    if citation is None:
        return None
    pmid = (citation.findtext("PMID") or "").strip()
    abstract = citation.find("Article/Abstract")
    if abstract is None:
        return None
    sections = []
    for part in abstract.iter("AbstractText"):
        text = _text(part)
        if not text:
            continue
        category = (part.get("NlmCategory") or "").upper()
        sections.append((part.get("Label"), category if category in CATEGORIES else None, text))
    if not sections:
        return None
    return Citation(pmid, _text(citation.find("Article/ArticleTitle")) if citation.find("Article/ArticleTitle")
                    is not None else "", sections)
