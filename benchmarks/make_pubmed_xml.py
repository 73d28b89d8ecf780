"""PubMed XML in the shape of NLM's baseline files (PubmedArticleSet DTD), from a PubMed RCT text-format corpus.

Each abstract of the corpus becomes a `PubmedArticle` (MedlineCitation with PMID, Article, ArticleTitle,
Abstract/AbstractText, and a PubmedData block); a share of them structured (one AbstractText a section, with
`Label` and `NlmCategory`), the rest one plain AbstractText; some citations without an abstract, and a
`DeleteCitation` at the end, as the update files have. Inline markup (<i>, <sup>) as MEDLINE writes it.

  python benchmarks/make_pubmed_xml.py OUT.xml.gz --corpus ../shared/data/nicta-piboso/train.txt --citations 30000
"""
from __future__ import annotations

import argparse
import gzip
import itertools
import random
import sys
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pubmed_rct.corpus.sources import abstracts_of, read_text_file

# Headings as authors write them, for each category (PubMed shows Label; NlmCategory is the category).
LABELS = {"BACKGROUND": ["BACKGROUND", "INTRODUCTION", "CONTEXT"], "OBJECTIVE": ["OBJECTIVE", "AIMS", "PURPOSE"],
          "METHODS": ["METHODS", "MATERIAL AND METHODS", "PATIENT(S)", "DESIGN"],
          "RESULTS": ["RESULTS", "RESULT(S)", "FINDINGS"], "CONCLUSIONS": ["CONCLUSIONS", "CONCLUSION(S)"]}
HEADER = ('<?xml version="1.0" encoding="utf-8"?>\n<!DOCTYPE PubmedArticleSet PUBLIC "-//NLM//DTD PubMedArticle, '
          '1st January 2025//EN" "https://dtd.nlm.nih.gov/ncbi/pubmed/out/pubmed_250101.dtd">\n<PubmedArticleSet>\n')
# The MEDLINE distribution of 2016 and earlier (and many archives): MedlineCitation elements under the root.
MEDLINE_HEADER = ('<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE MedlineCitationSet PUBLIC "-//NLM//DTD Medline '
                  'Citation, 1st January, 2016//EN" "http://www.nlm.nih.gov/databases/dtd/nlmmedlinecitationset_160101'
                  '.dtd">\n<MedlineCitationSet>\n')


def abstracts(corpus: Path) -> list[list[tuple[str, str]]]:
    """(label, sentence) lists of the corpus' abstracts, the `-LRB-`-style tokens of the text format kept."""
    rows = read_text_file(corpus)
    return [[(rows[i]["label"].upper(), rows[i]["text"]) for i in group] for group in abstracts_of(rows)]


def article(pmid: int, sentences: list[tuple[str, str]] | None, structured: bool, rng: random.Random) -> str:
    parts = []
    if sentences and structured:
        for category, group in itertools.groupby(sentences, key=lambda s: s[0]):
            text = escape(" ".join(s for _, s in group))
            nlm = category if category in LABELS else "UNASSIGNED"
            label = rng.choice(LABELS.get(category, [category]))
            parts.append(f'<AbstractText Label={quoteattr(label)} NlmCategory="{nlm}">{text}</AbstractText>')
    elif sentences:
        text = escape(" ".join(s for _, s in sentences))
        text = text.replace(" p ", " <i>p</i> ", 1)  # inline markup inside an AbstractText
        parts.append(f"<AbstractText>{text}</AbstractText>")
    abstract = f"<Abstract>{''.join(parts)}<CopyrightInformation>(c) 2025.</CopyrightInformation></Abstract>" \
        if parts else ""
    return (f'<PubmedArticle><MedlineCitation Status="MEDLINE" Owner="NLM" IndexingMethod="Automated">'
            f'<PMID Version="1">{pmid}</PMID><DateCompleted><Year>2025</Year><Month>01</Month><Day>02</Day>'
            f'</DateCompleted><Article PubModel="Print"><Journal><ISSN IssnType="Electronic">1234-5678</ISSN>'
            f'<JournalIssue CitedMedium="Internet"><Volume>26</Volume><Issue>1</Issue><PubDate><Year>2025</Year>'
            f'<Month>Jan</Month></PubDate></JournalIssue><Title>Trials</Title><ISOAbbreviation>Trials'
            f'</ISOAbbreviation></Journal><ArticleTitle>A randomised trial number {pmid}<sup>1</sup>.'
            f'</ArticleTitle><Pagination><StartPage>1</StartPage></Pagination>{abstract}<AuthorList '
            f'CompleteYN="Y"><Author ValidYN="Y"><LastName>Doe</LastName><ForeName>J</ForeName></Author>'
            f'</AuthorList><Language>eng</Language><PublicationTypeList><PublicationType UI="D016449">'
            f'Randomized Controlled Trial</PublicationType></PublicationTypeList></Article>'
            f'<MedlineJournalInfo><Country>England</Country></MedlineJournalInfo></MedlineCitation>'
            f'<PubmedData><PublicationStatus>ppublish</PublicationStatus><ArticleIdList><ArticleId '
            f'IdType="pubmed">{pmid}</ArticleId></ArticleIdList></PubmedData></PubmedArticle>\n')


def medline(pmid: int, sentences: list[tuple[str, str]] | None, structured: bool, rng: random.Random) -> str:
    """The same citation as a MedlineCitationSet holds it: the MedlineCitation alone."""
    xml = article(pmid, sentences, structured, rng)
    return xml[xml.index("<MedlineCitation "):xml.index("<PubmedData>")] + "\n"


def write(path: Path, corpus: Path, citations: int, structured: float = 0.35, without_abstract: float = 0.02,
          deleted: int = 3, first_pmid: int = 30_000_000, seed: int = 0, medline_set: bool = False) -> dict:
    """Write the file (gzipped if the name ends in .gz; a MedlineCitationSet with `medline_set`); returns what it
    holds."""
    record = medline if medline_set else article
    rng = random.Random(seed)
    pool = abstracts(corpus)
    counts = {"citations": 0, "structured": 0, "no_abstract": 0, "deleted": deleted}
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wt", encoding="utf-8") as f:
        f.write(MEDLINE_HEADER if medline_set else HEADER)
        for n in range(citations):
            if rng.random() < without_abstract:
                f.write(record(first_pmid + n, None, False, rng))
                counts["no_abstract"] += 1
                continue
            sentences = pool[n % len(pool)]
            is_structured = rng.random() < structured
            f.write(record(first_pmid + n, sentences, is_structured, rng))
            counts["citations"] += 1
            counts["structured"] += is_structured
        if deleted:
            pmids = "".join(f'<PMID Version="1">{first_pmid - 1 - i}</PMID>' for i in range(deleted))
            f.write(f"<DeleteCitation>{pmids}</DeleteCitation>\n")
        f.write("</MedlineCitationSet>\n" if medline_set else "</PubmedArticleSet>\n")
    return counts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--corpus", type=Path, default=Path(__file__).resolve().parents[2] / "shared/data/nicta-piboso/train.txt")
    ap.add_argument("--citations", type=int, default=30_000)
    ap.add_argument("--structured", type=float, default=0.35)
    ap.add_argument("--medline-set", action="store_true", help="a MedlineCitationSet, as MEDLINE was until 2016")
    args = ap.parse_args()
    print(write(args.out, args.corpus, args.citations, args.structured, medline_set=args.medline_set))


if __name__ == "__main__":
    main()
