"""PubMed/MEDLINE XML, read as a stream of records: NLM's baseline and update files (`pubmed26n0001.xml.gz`, the
PubmedArticleSet DTD) and the older MEDLINE distributions and archives (MedlineCitationSet, as in 2016).

Parsed with lxml's `iterparse`: each record is handed over when its end tag is read and then cleared, with the
siblings before it, so memory stays flat whatever the file's size (measured in benchmarks/README.md, against
pubmed_parser's `parse_medline_xml`, which builds the whole tree first). Spark 4's own XML source was tried
and not taken: it loses the order of text around inline markup (`<i>`, `<sup>`) inside an AbstractText
(benchmarks/spark_xml.py).

A record is every element directly under the root that NLM's DTDs put there: a citation (PubmedArticle, or
MedlineCitation in a MedlineCitationSet; a book, PubmedBookArticle) or a DeleteCitation. Citations are numbered
from 0 in file order, and a DeleteCitation goes with the citation before it; the label job cuts a file into
ranges of citations, and `scan` finds where each range starts in the file's bytes, so that a range is read
without parsing the records before it.
"""
from __future__ import annotations

import gzip
import re
import zlib
from dataclasses import dataclass, field
from typing import BinaryIO, Iterator

from ..text.headings import CATEGORIES

# Each set's citations: what units count (a DeleteCitation goes with the citation before it).
SETS = {"PubmedArticleSet": ("PubmedArticle", "PubmedBookArticle"), "MedlineCitationSet": ("MedlineCitation",)}
RECORD_TAGS = ("PubmedArticle", "PubmedBookArticle", "DeleteCitation", "MedlineCitation")


class XMLError(ValueError):
    """A file that is not PubMed XML, or breaks off: the message names the file and where; `records` is how
    many records were read whole before the fault."""

    def __init__(self, message: str, records: int = 0):
        super().__init__(message)
        self.records = records


@dataclass
class Citation:
    """One citation with an abstract: (heading, NlmCategory if one of the five, text) per AbstractText."""
    pmid: str
    title: str
    sections: list[tuple[str | None, str | None, str]]


@dataclass
class Skipped:
    """A record without anything to label: a citation without an abstract (`no_abstract`; a later version of a
    PMID without one still replaces the earlier) or a book (`book`)."""
    pmid: str
    why: str


@dataclass
class Deletion:
    """A DeleteCitation: these PMIDs are withdrawn (NLM's update files)."""
    pmids: list[str] = field(default_factory=list)


def _text(element) -> str:
    """All text inside an element, inline markup (<i>, <sup>, <b>) included, white space folded."""
    return " ".join("".join(element.itertext()).split())


def decompressed(path: str, stream: BinaryIO) -> BinaryIO:
    """The file's bytes, gunzipped when its name ends in .gz."""
    return Gunzip(stream) if str(path).endswith(".gz") else stream


class Gunzip:
    """A .gz stream's bytes, every byte before a break handed over before the break is raised (EOFError):
    gzip.GzipFile drops the bytes of the read that meets the end of a file cut short, a whole block of
    citations. Files of several gzip members are read through, as gzip reads them."""

    def __init__(self, stream: BinaryIO):
        self.stream, self.inflate, self.ended = stream, zlib.decompressobj(16 + zlib.MAX_WBITS), False

    def read(self, n: int = -1) -> bytes:
        n = n if n and n > 0 else 1 << 16
        out = b""
        while len(out) < n and not self.ended:
            if self.inflate.eof:  # (the rest of the input is in unused_data then, not unconsumed_tail)
                data = self.inflate.unused_data or self.stream.read(1 << 16)
                if not data:
                    self.ended = True
                    break
                self.inflate = zlib.decompressobj(16 + zlib.MAX_WBITS)  # the next gzip member
            elif self.inflate.unconsumed_tail:
                data = self.inflate.unconsumed_tail
            else:
                data = self.stream.read(1 << 16)
                if not data:
                    if out:
                        return out  # the bytes before the break first; the break on the next read
                    raise EOFError("compressed file ended before the end-of-stream marker was reached")
            out += self.inflate.decompress(data, n - len(out))
        return out

    def seekable(self) -> bool:
        return False

    def close(self) -> None:
        self.stream.close()


def records(path: str, stream: BinaryIO, first: int = 0) -> Iterator[Citation | Skipped | Deletion]:
    """The records of decompressed XML bytes in file order (`first`: the number of the first citation, for
    messages). A stream that is not well formed or breaks off raises XMLError after the records before the
    fault; one that holds no record at all raises XMLError naming its root element."""
    from lxml import etree
    parser = etree.iterparse(stream, events=("end",), tag=RECORD_TAGS, resolve_entities=False, no_network=True,
                             huge_tree=True)
    citations = elements = 0
    try:
        for _, element in parser:
            parent = element.getparent()
            if element.tag == "MedlineCitation" and parent is not None and parent.tag == "PubmedArticle":
                continue  # inside a PubmedArticle: read with it
            record = _record(element)
            elements += 1
            citations += not isinstance(record, Deletion)
            yield record
            element.clear()
            while element.getprevious() is not None:  # the siblings already handed over
                del parent[0]
    except etree.XMLSyntaxError as e:
        raise XMLError(f"{path}: not well-formed XML at line {e.lineno} (after citation {first + citations:,}): "
                       f"{e.msg}", citations) from e
    except (EOFError, zlib.error, gzip.BadGzipFile, OSError) as e:
        raise XMLError(f"{path}: the compressed file breaks off or is damaged after citation {first + citations:,} "
                       f"({e}); download it again", citations) from e
    if elements == 0 and first == 0:
        root = parser.root.tag if getattr(parser, "root", None) is not None else "none"
        raise XMLError(f"{path}: no PubMed or MEDLINE record under its root element <{root}>; expected "
                       f"{' or '.join(SETS)} (NLM's baseline and update files)")


def _record(element) -> Citation | Skipped | Deletion:
    if element.tag == "DeleteCitation":
        return Deletion([p.text.strip() for p in element.iter("PMID") if p.text and p.text.strip()])
    citation = element if element.tag == "MedlineCitation" else element.find("MedlineCitation")
    if element.tag == "PubmedBookArticle" or citation is None:
        return Skipped((element.findtext(".//PMID") or "").strip(), "book")
    pmid = (citation.findtext("PMID") or "").strip()
    abstract = citation.find("Article/Abstract")
    sections = []
    for part in abstract.iter("AbstractText") if abstract is not None else ():
        text = _text(part)
        if not text:
            continue
        category = (part.get("NlmCategory") or "").upper()
        sections.append((part.get("Label"), category if category in CATEGORIES else None, text))
    if not sections:
        return Skipped(pmid, "no_abstract")
    title = citation.find("Article/ArticleTitle")
    return Citation(pmid, _text(title) if title is not None else "", sections)


_ROOT = re.compile(rb"<(PubmedArticleSet|MedlineCitationSet)[\s>]")


@dataclass
class Scan:
    """What `scan` found: the citations (as lxml counts them) and DeleteCitations, the fault that ended the file
    if any, the byte offsets (in the decompressed file) where citation number k * every starts, the header
    before the first citation, and how many citation start tags lie in the bytes after a fault (lost to it)."""
    records: int = 0
    deletions: int = 0
    fault: str | None = None
    lost: int = 0
    offsets: list[int] | None = None
    header: bytes = b""


class _Tee:
    """A file object over decompressed bytes that lxml reads, finding record start tags as the bytes pass."""

    def __init__(self, stream: BinaryIO, every: int):
        self.stream, self.every = stream, every
        self.pattern = None
        self.buffer, self.base = b"", 0  # bytes not yet scanned (and a short overlap), from offset `base`
        self.head, self.header_end = b"", None  # the file's first bytes, until the first record start
        self.starts, self.offsets = 0, []

    def read(self, n: int = -1) -> bytes:
        data = self.stream.read(n if n and n > 0 else 1 << 16)
        if self.header_end is None and len(self.head) < 1 << 20:
            self.head += data
        self.buffer += data
        if self.pattern is None:
            root = _ROOT.search(self.buffer)
            if root is None and data and len(self.buffer) < 1 << 20:
                return data  # the root element is not in sight yet
            tags = SETS[root.group(1).decode()] if root else ("PubmedArticle", "PubmedBookArticle")
            self.pattern = re.compile(rb"<(?:" + b"|".join(t.encode() for t in tags) + rb")[\s/>]")
        end = 0
        for m in self.pattern.finditer(self.buffer):
            if self.header_end is None:
                self.header_end = self.base + m.start()
            if self.starts % self.every == 0:
                self.offsets.append(self.base + m.start())
            self.starts, end = self.starts + 1, m.end()
        keep = max(end, len(self.buffer) - 24)  # a tag cut in two by the block boundary is found next time
        self.buffer, self.base = self.buffer[keep:], self.base + keep
        return data


def scan(path: str, stream: BinaryIO, every: int) -> Scan:
    """Count the records of a file (lxml, as `records` reads them) and find in the same pass where every
    `every`-th one starts. The offsets are kept only where the start tags found in the bytes are exactly the
    records lxml read (no record tag hidden in a comment or CDATA), so a range read from an offset is the
    range that reading from the start would give."""
    tee = _Tee(decompressed(path, stream), every)
    result = Scan()
    try:
        for record in records(path, tee):
            if isinstance(record, Deletion):
                result.deletions += 1
            else:
                result.records += 1
    except XMLError as e:
        result.records, result.fault = e.records, str(e)
        with_fault = True
    else:
        with_fault = False
    if with_fault:  # read on past the fault for the start tags of the records it cost
        try:
            while tee.read(1 << 16):
                pass
        except (EOFError, zlib.error, gzip.BadGzipFile, OSError):
            pass
        result.lost = max(0, tee.starts - result.records)
    elif tee.starts == result.records and tee.header_end is not None and tee.header_end <= len(tee.head):
        result.offsets, result.header = tee.offsets, tee.head[:tee.header_end]
    return result
