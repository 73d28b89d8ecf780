"""Which embedded engine searches a labelled literature by role: tantivy against SQLite FTS5 on the same
generated corpus, with a scan of the Parquet (pyarrow) as the floor a user has without an index.

  python benchmarks/search_engines.py --sentences 10000000 [--work /tmp/search-bench] [--queries 200]

The corpus is written as the label job writes its output (Parquet parts of 2,500 sentences and a manifest),
from NICTA-PIBOSO's real sentences, varied: each generated sentence is a real one with about a fifth of its
words replaced by other words of the corpus, so lengths follow the real distribution and no two are alike.
Roles, probabilities and sources are drawn as a trained model gives them. tantivy is built and searched
through the project's own code (`pubmed_rct.search`: `index`, `search` with marks and stored fields); FTS5
with the same fields (porter stemming, BM25, highlight()). Queries: 1 to 4 words drawn from the corpus (the
document frequency of real queries: a word of a random sentence), each run unfiltered and filtered to one
role (and for tantivy also with a probability floor). Peak memory: the build's process (ru_maxrss).
"""
from __future__ import annotations

import argparse
import json
import os
import random
import re
import sqlite3
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from label_speed import cpu_flags  # noqa: E402

NICTA = HERE.parents[1] / "shared" / "data" / "nicta-piboso"
ROLES = {"BACKGROUND": 0.12, "OBJECTIVE": 0.08, "METHODS": 0.33, "RESULTS": 0.32, "CONCLUSIONS": 0.15}
PER_PART = 2500


def real_sentences() -> list[list[str]]:
    out = []
    for split in ("train", "dev", "test"):
        for line in (NICTA / f"{split}.txt").read_text(encoding="utf-8").splitlines():
            if "\t" in line:
                out.append(line.split("\t", 1)[1].split())
    return out


def write_corpus(folder: Path, n: int, seed: int = 0) -> dict:
    """The label job's output layout with n sentences; its text bytes and Parquet bytes."""
    import numpy as np
    from pubmed_rct.io import write_json
    from pubmed_rct.literature import parts
    rng = np.random.default_rng(seed)
    sentences = real_sentences()
    vocab = sorted({w for s in sentences for w in s})
    model = {"uri": "benchmark", "version": None, "sha256": "0" * 64, "backend": "auto"}
    names, text_bytes, pmid = [], 0, 30_000_000
    roles, weights = list(ROLES), list(ROLES.values())
    for k in range(n // PER_PART):
        templates = rng.integers(0, len(sentences), PER_PART)
        rows = []
        for i, t in enumerate(templates):
            words = list(sentences[t])
            for j in np.nonzero(rng.random(len(words)) < 0.2)[0]:
                words[j] = vocab[rng.integers(0, len(vocab))]
            text = " ".join(words)
            text_bytes += len(text.encode())
            if i % 10 == 0:
                pmid += 1
            rows.append({"id": str(pmid), "sentence_index": i % 10, "text": text,
                         "label": roles[rng.choice(5, p=weights)], "probability": float(rng.beta(8, 1.5)),
                         "source": "author" if rng.random() < 0.3 else "model", "heading": None,
                         "heading_category": None, "input": "benchmark.xml"})
        name = parts.part_name(str(folder / "benchmark.xml"), k)
        parts.write(str(folder), name, parts.table(rows, model, {}))
        names.append(name)
    write_json(folder / "manifest.json", {"model": model, "chunk": PER_PART, "relabel": False,
                                          "inputs": {str(folder / "benchmark.xml"): {"order": 0, "parts": names}}})
    size = sum((folder / name).stat().st_size for name in names)
    return {"sentences": len(names) * PER_PART, "text_bytes": text_bytes, "parquet_bytes": size}


def folder_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


BUILD_FTS5 = """
import sqlite3, sys, json
import pyarrow.parquet as pq
corpus, db = sys.argv[1], sys.argv[2]
manifest = json.load(open(f"{corpus}/manifest.json"))
con = sqlite3.connect(db)
con.execute("PRAGMA journal_mode=WAL"); con.execute("PRAGMA synchronous=NORMAL")
con.execute("CREATE VIRTUAL TABLE s USING fts5(text, role UNINDEXED, label UNINDEXED, id UNINDEXED, "
            "sentence_index UNINDEXED, probability UNINDEXED, source UNINDEXED, heading UNINDEXED, "
            "tokenize='porter unicode61')")
for entry in manifest["inputs"].values():
    for name in entry["parts"]:
        t = pq.read_table(f"{corpus}/{name}").to_pydict()
        con.executemany("INSERT INTO s VALUES (?,?,?,?,?,?,?,?)", zip(
            t["text"], [l.lower() for l in t["label"]], t["label"], t["id"], t["sentence_index"],
            t["probability"], t["source"], t["heading"]))
con.commit()
con.execute("INSERT INTO s(s) VALUES('optimize')"); con.commit()
"""


PEAK = ("import atexit, resource, runpy, sys\n"  # the child's own peak, read at its exit
        "atexit.register(lambda: print('peak-kib', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, "
        "file=sys.stderr))\n")


def timed_child(code: str, *argv: str) -> tuple[float, int]:
    """(seconds, peak RSS MiB) of `code` run in a child Python with `argv`."""
    start = time.perf_counter()
    r = subprocess.run([sys.executable, "-c", PEAK + code, *argv], env={**os.environ, "PYTHONPATH": str(HERE.parent)},
                       capture_output=True, text=True)
    if r.returncode:
        raise SystemExit(r.stderr[-3000:])
    return time.perf_counter() - start, int(re.search(r"peak-kib (\d+)", r.stderr).group(1)) // 1024


def queries(n: int, seed: int = 1) -> list[str]:
    rng = random.Random(seed)
    sentences = real_sentences()
    out = []
    while len(out) < n:
        words = [w for w in rng.choice(sentences) if re.fullmatch(r"[A-Za-z]{3,}", w)]
        if words:
            out.append(" ".join(rng.sample(words, min(len(words), 1 + len(out) % 4))))
    return out


def percentiles(times: list[float]) -> str:
    times = sorted(times)
    return f"{1000 * statistics.median(times):.1f} / {1000 * times[int(0.99 * (len(times) - 1))]:.1f}"


def fts5_query(words: str) -> str:
    return " ".join(f'"{w}"' for w in re.findall(r"[A-Za-z0-9]+", words))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sentences", type=int, default=10_000_000)
    ap.add_argument("--work", type=Path, default=Path("/tmp/search-bench"))
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--scans", type=int, default=5, help="queries for the Parquet scan (each reads everything)")
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    corpus, index, db = args.work / "corpus", args.work / "tantivy", args.work / "fts5.db"
    if not (corpus / "manifest.json").is_file():
        start = time.perf_counter()
        made = write_corpus(corpus, args.sentences)
        json.dump(made, open(args.work / "corpus.json", "w"))
        print(f"corpus: {made['sentences']:,} sentences in {time.perf_counter() - start:.0f} s")
    made = json.load(open(args.work / "corpus.json"))
    print(f"{made['sentences']:,} sentences, text {made['text_bytes'] / 2 ** 30:.2f} GiB, Parquet "
          f"{made['parquet_bytes'] / 2 ** 30:.2f} GiB; {os.cpu_count()} cores, CPU flags {cpu_flags()}")
    rows = ["| engine | build s | sentences/s | index GiB | index / Parquet | index / text | peak MiB | "
            "unfiltered p50 / p99 ms | one role p50 / p99 ms | role + probability ≥ 0.9 p50 / p99 ms |",
            "|---|---|---|---|---|---|---|---|---|---|"]
    if not (index / "index.json").is_file():
        secs, peak = timed_child("sys.argv = ['pubmed_rct', *sys.argv[1:]]; runpy.run_module('pubmed_rct', "
                                 "run_name='__main__', alter_sys=True)", "index", str(corpus), "--index", str(index))
    else:
        secs, peak = float("nan"), 0
    if not db.is_file():
        fsecs, fpeak = timed_child(BUILD_FTS5, str(corpus), str(db))
    else:
        fsecs, fpeak = float("nan"), 0
    asked = queries(args.queries)
    from pubmed_rct.search.query import Searcher
    searcher = Searcher(index)
    found = {}
    for kind, kwargs in (("plain", {}), ("role", {"roles": ["RESULTS"]}),
                         ("sure", {"roles": ["RESULTS"], "min_probability": 0.9})):
        times = []
        for q in asked:
            start = time.perf_counter()
            found[(kind, q)] = searcher.search(q, limit=20, **kwargs)["count"]
            times.append(time.perf_counter() - start)
        found[kind] = percentiles(times)
    size = folder_size(index)
    rows.append(f"| tantivy 0.27 (pubmed_rct.search) | {secs:.0f} | {made['sentences'] / secs:,.0f} | "
                f"{size / 2 ** 30:.2f} | {size / made['parquet_bytes']:.2f} | {size / made['text_bytes']:.2f} | "
                f"{peak:,} | {found['plain']} | {found['role']} | {found['sure']} |")
    con = sqlite3.connect(db)
    fts = {}
    for kind, where in (("plain", ""), ("role", " AND role = 'results'"),
                        ("sure", " AND role = 'results' AND probability >= 0.9")):
        times = []
        for q in asked:
            start = time.perf_counter()
            con.execute("SELECT id, sentence_index, label, probability, source, highlight(s, 0, '<mark>', "
                        f"'</mark>') FROM s WHERE s MATCH ?{where} ORDER BY rank LIMIT 20",
                        (fts5_query(q),)).fetchall()
            times.append(time.perf_counter() - start)
        fts[kind] = percentiles(times)
    fsize = db.stat().st_size + sum(p.stat().st_size for p in args.work.glob("fts5.db-*"))
    rows.append(f"| SQLite {sqlite3.sqlite_version} FTS5 | {fsecs:.0f} | {made['sentences'] / fsecs:,.0f} | "
                f"{fsize / 2 ** 30:.2f} | {fsize / made['parquet_bytes']:.2f} | {fsize / made['text_bytes']:.2f} | "
                f"{fpeak:,} | {fts['plain']} | {fts['role']} | {fts['sure']} |")
    import pyarrow.compute as pc
    import pyarrow.dataset as ds
    data = ds.dataset(corpus / "sentences", format="parquet")
    scans = {}
    for kind in ("plain", "role"):
        times = []
        for q in asked[: args.scans]:
            start = time.perf_counter()
            expr = None
            for w in re.findall(r"[A-Za-z0-9]+", q):
                e = pc.match_substring(pc.field("text"), w, ignore_case=True)
                expr = e if expr is None else expr & e
            if kind == "role":
                expr = expr & (pc.field("label") == "RESULTS")
            data.to_table(columns=["id", "text", "label", "probability"], filter=expr).slice(0, 20)
            times.append(time.perf_counter() - start)
        scans[kind] = percentiles(times)
    rows.append(f"| pyarrow scan of the Parquet (no index, no ranking) | - | - | - | - | - | - | {scans['plain']} | "
                f"{scans['role']} | - |")
    print(f"queries: {len(asked)} of 1-4 words (tantivy, FTS5), {args.scans} for the scan; 20 hits each, with "
          "stored fields and marked words")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
