"""Does Spark 4's own XML source keep what the label job needs? Read one generated PubMed XML file with
`spark.read.format("xml").option("rowTag", "PubmedArticle")` and with the project's lxml reader
(pubmed_rct.literature.pubmed_xml), and compare each AbstractText's text, Label and NlmCategory.

  python benchmarks/spark_xml.py [--citations 200]

Prints one line per kind of difference with an example, and the count of AbstractTexts whose text Spark changed.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from make_pubmed_xml import write as write_xml  # noqa: E402

NICTA = HERE.parents[1] / "shared" / "data" / "nicta-piboso"


def spark_sections(path: Path) -> dict[str, list[tuple]]:
    """(Label, NlmCategory, text) per AbstractText as Spark's XML source gives them: text is `_VALUE`, the text
    around inline elements, which Spark keeps apart from the elements (`i`, `sup`, `b` fields)."""
    from pyspark.sql import SparkSession
    spark = (SparkSession.builder.master("local[1]").config("spark.ui.enabled", "false")
             .config("spark.ui.showConsoleProgress", "false").config("spark.driver.host", "127.0.0.1").getOrCreate())
    spark.sparkContext.setLogLevel("ERROR")
    try:
        rows = spark.read.format("xml").option("rowTag", "PubmedArticle").load(str(path)).collect()
    finally:
        spark.stop()
    out = {}
    for row in rows:
        citation = row["MedlineCitation"]
        abstract = citation["Article"]["Abstract"] if citation["Article"] else None
        pmid = str(citation["PMID"]["_VALUE"])
        texts = []
        for part in (abstract["AbstractText"] or []) if abstract else []:
            value = part["_VALUE"]
            text = " ".join(value) if isinstance(value, list) else str(value or "")
            texts.append((part["_Label"], part["_NlmCategory"], " ".join(text.split())))
        out[pmid] = texts
    return out


def spark_category(value) -> str | None:
    """NlmCategory as the project keeps it: one of the five, else None (UNASSIGNED and the like)."""
    from pubmed_rct.text.headings import CATEGORIES
    value = (value or "").upper()
    return value if value in CATEGORIES else None


def lxml_sections(path: Path) -> dict[str, list[tuple]]:
    from pubmed_rct.literature import reading
    return {r.id: [(label, category, text) for label, category, text in r.sections]
            for r in reading.read(str(path), 0, 10 ** 9) if r.sections}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--citations", type=int, default=200)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "pubmed.xml"
        write_xml(path, NICTA / "test.txt", args.citations, structured=0.35, without_abstract=0, deleted=0)
        theirs, ours = spark_sections(path), lxml_sections(path)
    changed, examples = 0, {}
    for pmid, sections in ours.items():
        for i, (label, category, text) in enumerate(sections):
            other = theirs.get(pmid, [])[i] if i < len(theirs.get(pmid, [])) else None
            if other is None:
                examples.setdefault("missing", (pmid, text[:80], None))
                changed += 1
            elif other[2] != text:
                at = next(j for j, (a, b) in enumerate(zip(text + "\0", other[2] + "\0")) if a != b)
                examples.setdefault("text", (pmid, f"...{text[max(0, at - 40):at + 60]}...",
                                             f"...{other[2][max(0, at - 40):at + 60]}..."))
                changed += 1
            elif (other[0], spark_category(other[1])) != (label, category):
                examples.setdefault("label", (pmid, (label, category), other[:2]))
                changed += 1
    total = sum(len(s) for s in ours.values())
    print(f"{args.citations} citations, {total} AbstractTexts: Spark's XML source changed {changed} of them")
    for kind, (pmid, mine, spark) in examples.items():
        print(f"- {kind}, PMID {pmid}:\n    lxml:  {mine!r}\n    Spark: {spark!r}")


if __name__ == "__main__":
    main()
