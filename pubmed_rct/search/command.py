"""`python -m pubmed_rct index` and `python -m pubmed_rct search`: their arguments and output."""
from __future__ import annotations

import csv
import io
import json
import os
import sys
from pathlib import Path

from ..options import POSITIVE

INDEX_HELP = "index a labelled literature (the label job's --out, local or s3://) for search by role"
SEARCH_HELP = "search an index by words and role: BM25-ranked sentences with their PMID, role and probability"
BOLD, RESET = "\033[1m", "\033[0m"


def add_index_arguments(parser) -> None:
    parser.add_argument("labelled", metavar="LABELLED", help="the label job's output folder (or s3:// prefix)")
    parser.add_argument("--index", required=True, help="the index folder (made, or brought up to date)")


def add_search_arguments(parser) -> None:
    parser.add_argument("query", nargs="?", default="", help='words and "quoted phrases", all of which must match')
    parser.add_argument("--index", required=True, help="an index built by `python -m pubmed_rct index`")
    parser.add_argument("--role", action="append", help="only sentences of this role (repeatable: any of them)")
    parser.add_argument("--min-probability", type=float, help="only sentences the model labelled at least this sure")
    parser.add_argument("--source", choices=["author", "model"], help="author: labels from the abstract's own "
                        "headings; model: the model's")
    parser.add_argument("--limit", type=POSITIVE, default=20, help="how many sentences (at most 200)")
    parser.add_argument("--format", choices=["text", "json", "csv"], default="text")
    parser.add_argument("--abstract", metavar="PMID", help="print this abstract, its sentences regrouped by role")


def index_main(args) -> int:
    from ..literature import inputs
    from .. import lifetime
    from .index import build
    labelled = inputs.identity(args.labelled) if inputs.is_s3(args.labelled) else str(Path(args.labelled).resolve())
    options = inputs.s3_options() if inputs.is_s3(labelled) else None
    folder = Path(args.index)
    with lifetime.exclusive(folder / ".lock", f"an index build into {folder}", wait_s=0):
        print(build(labelled, folder, options), file=sys.stderr)
    return 0


def search_main(args) -> int:
    from .query import Searcher, mark_text
    searcher = Searcher(args.index)
    if args.abstract:
        from ..inference.render import render
        sentences = searcher.abstract(args.abstract)
        if not sentences:
            print(f"search: no sentence of PMID {args.abstract} in {args.index}", file=sys.stderr)
            return 1
        fmt = "json" if args.format == "json" else "text"
        print(f"PMID {args.abstract}  https://pubmed.ncbi.nlm.nih.gov/{args.abstract}/" if fmt == "text" else "",
              end="\n" if fmt == "text" else "")
        print(render(sentences, fmt, searcher.roles or sorted({s["label"] for s in sentences}),
                     colour=sys.stdout.isatty() and not os.environ.get("NO_COLOR")))
        return 0
    found = searcher.search(args.query, args.role, args.min_probability, args.source, args.limit)
    if args.format == "json":
        print(json.dumps(found, indent=2, ensure_ascii=False))
    elif args.format == "csv":
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(["id", "sentence_index", "label", "probability", "source", "heading", "text", "marked",
                         "link"])
        for h in found["hits"]:
            writer.writerow([h["id"], h["sentence_index"], h["label"], h["probability"], h["source"],
                             h["heading"] or "", h["text"], mark_text(h["text"], h["marks"]), h["link"]])
        sys.stdout.write(out.getvalue())
    else:
        bold = sys.stdout.isatty() and not os.environ.get("NO_COLOR")
        for h in found["hits"]:
            marked = mark_text(h["text"], h["marks"], *((BOLD, RESET) if bold else ("**", "**")))
            print(f"{h['id']}  {h['label'].upper()}  {h['probability']:.2f}  {h['source']}  {h['link']}\n  {marked}")
    print(f"search: {found['count']:,} sentences match, {len(found['hits'])} shown", file=sys.stderr)
    return 0


COMMANDS = {"index": (INDEX_HELP, add_index_arguments, index_main),
            "search": (SEARCH_HELP, add_search_arguments, search_main)}
