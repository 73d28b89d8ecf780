"""Sentence splitters scored on tests/fixtures/sentences/abstracts.txt: sentence precision, recall, F1 and
abstracts split exactly, for pysbd alone, pysbd with this project's rules (the splitter predict uses) and the
other rule-based segmenters on PyPI that need no download at run time.

  python benchmarks/sentence_split.py [--gold FILE | --corpus PUBMED_RCT_FILE] [--show-errors ENGINE]

--corpus scores on a corpus in the PubMed RCT text format against its own sentence splits (each abstract's
sentences joined by spaces; such corpora are tokenized, "p < 0.05 ." and all, and keep some headings and
enumerations as sentences of their own, so their figures are lower for every splitter).

The alternatives are not project requirements: `pip install -r benchmarks/requirements-splitters.txt` (a
missing one is reported and skipped). Every engine gets the same input: the abstract's paragraphs with the
section headings taken out by pubmed_rct.sentences, line breaks as spaces, so only sentence boundaries differ.
"""
from __future__ import annotations

import argparse
import re
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pubmed_rct.text.sentences import paragraphs, repair, segment

GOLD = Path(__file__).resolve().parents[1] / "tests/fixtures/sentences/abstracts.txt"


def read_gold(path: Path = GOLD) -> list[tuple[str, str, list[tuple[str | None, str]]]]:
    """(id, text as pasted, gold (heading, sentence) pairs) for each abstract of the set.

    The file: `### <id>` opens an abstract; `||` marks a sentence boundary and `{...}` a section heading.
    The pasted text is the file's text without the marks (a space before `||` goes with it); the gold
    sentences are the pieces between `||`, headings removed, whitespace collapsed; a sentence's heading is
    the last one before it, without its punctuation."""
    out = []
    for block in re.split(r"(?m)^### ", path.read_text(encoding="utf-8"))[1:]:
        ident, _, body = block.partition("\n")
        body = body.strip("\n")
        text = re.sub(r" ?\|\|", "", body).replace("{", "").replace("}", "")
        gold, heading = [], None
        for piece in body.split("||"):
            for m in re.finditer(r"\{([^}]*)\}", piece):
                heading = " ".join(m.group(1).strip(" :.-\u2013\u2014\n").split())
            sentence = " ".join(re.sub(r"\{[^}]*\}", " ", piece).split())
            if sentence:
                gold.append((heading, sentence))
        out.append((ident.strip(), text, gold))
    return out


def read_corpus(path: Path) -> list[tuple[str, str, list[tuple[None, str]]]]:
    """(id, sentences joined by spaces, the corpus's own sentences) for each abstract of a PubMed RCT file."""
    from pubmed_rct.corpus.sources import abstracts_of, read_text_file
    rows = read_text_file(path)
    return [(rows[g[0]]["abstract_id"], " ".join(rows[i]["text"] for i in g), [(None, rows[i]["text"]) for i in g])
            for g in abstracts_of(rows)]


def score(pred: list[str], gold: list[str]) -> tuple[int, int, int]:
    """(sentences found exactly, sentences predicted, gold sentences) for one abstract."""
    norm = lambda xs: Counter(" ".join(x.split()) for x in xs)  # noqa: E731
    return sum((norm(pred) & norm(gold)).values()), len(pred), len(gold)


def prf(counts: list[tuple[int, int, int]]) -> tuple[float, float, float]:
    tp, n_pred, n_gold = (sum(c[i] for c in counts) for i in range(3))
    p, r = tp / max(n_pred, 1), tp / max(n_gold, 1)
    return p, r, 2 * p * r / max(p + r, 1e-12)


def engines() -> dict[str, object]:
    """name -> paragraph -> sentences, for each segmenter that imports here (the rest are reported)."""
    out: dict[str, object] = {}

    def pysbd_alone():
        import pysbd
        seg = pysbd.Segmenter(language="en", clean=False)
        return lambda p: seg.segment(p)

    def syntok():
        from syntok import segmenter
        return lambda p: ["".join(t.spacing + t.value for t in s) for par in segmenter.process(p) for s in par]

    def segtok():
        from segtok.segmenter import split_single
        return split_single

    def blingfire():
        import blingfire
        return lambda p: blingfire.text_to_sentences(p).split("\n")

    def sentencex():
        from sentencex import segment as sx
        return lambda p: list(sx("en", p))

    def sentence_splitter():
        from sentence_splitter import SentenceSplitter
        return SentenceSplitter(language="en").split

    for name, make in [("pysbd 0.3.4", pysbd_alone), ("syntok 1.4.4", syntok), ("segtok 1.5.11", segtok),
                       ("blingfire 0.1.8", blingfire), ("sentencex 1.0.32", sentencex),
                       ("sentence-splitter 1.4", sentence_splitter)]:
        try:
            engine = make()
        except ImportError as e:
            print(f"{name}: not installed ({e.name}); pip install -r benchmarks/requirements-splitters.txt")
            continue
        out[f"{name} alone"] = engine
        if not name.startswith("pysbd"):
            out[f"{name} + project rules"] = lambda p, engine=engine: repair(p, engine(p))
    out["pysbd 0.3.4 + project rules (chosen)"] = segment
    return out


def split_with(engine, text: str) -> list[tuple[str | None, str]]:
    return [(h, s.strip()) for h, p in paragraphs(text) for s in engine(p) if s.strip()]


def evaluate(engine, gold_set) -> dict:
    per = {ident: score([s for _, s in split_with(engine, text)], [s for _, s in gold])
           for ident, text, gold in gold_set}
    p, r, f = prf(list(per.values()))
    exact = sum(c[0] == c[1] == c[2] for c in per.values())
    return {"precision": p, "recall": r, "f1": f, "exact": exact, "per_abstract": per}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--gold", type=Path, default=GOLD)
    ap.add_argument("--corpus", type=Path, help="a PubMed RCT text-format file instead of --gold")
    ap.add_argument("--show-errors", metavar="ENGINE", help="print the sentences ENGINE gets wrong")
    args = ap.parse_args()
    source = args.corpus or args.gold
    gold_set = read_corpus(args.corpus) if args.corpus else read_gold(args.gold)
    print(f"{len(gold_set)} abstracts, {sum(len(g) for _, _, g in gold_set)} gold sentences ({source.name})\n")
    print(f"| {'splitter':38} | precision | recall | F1    | abstracts exact |")
    print(f"|{'-' * 40}|-----------|--------|-------|-----------------|")
    for name, engine in engines().items():
        r = evaluate(engine, gold_set)
        print(f"| {name:38} | {r['precision']:.3f}     | {r['recall']:.3f}  | {r['f1']:.3f} | "
              f"{str(r['exact']) + ' / ' + str(len(gold_set)):15} |")
        if args.show_errors and args.show_errors in name:
            for ident, text, gold in gold_set:
                pred = [s for _, s in split_with(engine, text)]
                want = [s for _, s in gold]
                if pred != want:
                    print(f"  {ident}: missing {[s for s in want if s not in pred]}\n"
                          f"  {' ' * len(ident)}  extra   {[s for s in pred if s not in want]}")


if __name__ == "__main__":
    main()
