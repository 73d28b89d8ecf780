"""The label job on this CPU: abstracts/s with 1 and 2 Spark workers against `predict --jsonl` on the same
abstracts, time to first output, peak memory per Spark Python worker; MiniLM and a BERT-base-sized model
(random heads: speed only). And the XML reader's peak memory on a 30,000-citation file against pubmed_parser.

  pip install -r benchmarks/requirements-label.txt   # pubmed_parser, compared as the XML reader
  python benchmarks/label_speed.py --model MINILM_DIR [--citations 200] [--xml-citations 30000]
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from make_pubmed_xml import write as write_xml
from predict_speed import bert_base_dir
from pubmed_rct import sources
from pubmed_rct.model import build_model, load_tokenizer
from pubmed_rct.pubmed_xml import Counts

ROOT = Path(__file__).resolve().parents[1]
NICTA = ROOT.parent / "shared" / "data" / "nicta-piboso"


def cpu_flags() -> str:
    flags = set(Path("/proc/cpuinfo").read_text().split("flags")[1].split("\n")[0].split())
    return ", ".join(f for f in ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16") if f in flags) or "none"


def peak_rss(pattern: str, stop: threading.Event, out: dict) -> None:
    """Highest VmHWM (kB) of any process whose command line matches `pattern`, polled until `stop`."""
    while not stop.is_set():
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
                if re.search(pattern, cmd):
                    hwm = int(re.search(r"VmHWM:\s+(\d+)", Path(f"/proc/{pid}/status").read_text()).group(1))
                    out[pid] = max(out.get(pid, 0), hwm)
            except (OSError, AttributeError):
                continue
        time.sleep(0.2)


def timed(cmd: list[str], pattern: str) -> tuple[float, str, int]:
    """(seconds, stderr, peak MiB of the processes matching pattern)."""
    stop, seen = threading.Event(), {}
    watcher = threading.Thread(target=peak_rss, args=(pattern, stop, seen), daemon=True)
    watcher.start()
    start = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    elapsed = time.perf_counter() - start
    stop.set()
    watcher.join()
    if r.returncode not in (0, 1):
        raise SystemExit(f"{cmd} failed:\n{r.stderr[-3000:]}")
    return elapsed, r.stderr, max(seen.values(), default=0) // 1024


def trained_like(model: str, mode: str, tmp: str, labels: list[str]) -> str:
    """MiniLM with a fresh head, saved as the train stage saves a model (speed only)."""
    m = build_model(model, labels, mode)
    m.save_pretrained(tmp)
    load_tokenizer(model).save_pretrained(tmp)
    return tmp


def xml_memory(citations: int, tmp: Path) -> list[str]:
    path = tmp / "pubmed-30k.xml.gz"
    write_xml(path, NICTA / "train.txt", citations, structured=0.35)
    code_ours = ("from pubmed_rct.pubmed_xml import citations, Counts; c = Counts(); "
                 f"n = sum(1 for _ in citations('{path}', c)); print(n)")
    code_theirs = ("import pubmed_parser as pp; "  # a generator too: one dict per citation, abstract as one string
                   f"print(sum(1 for _ in pp.parse_medline_xml('{path}', nlm_category=True)))")
    lines = []
    for name, code in (("lxml iterparse (pubmed_rct.pubmed_xml)", code_ours),
                       ("pubmed_parser 0.5.1 parse_medline_xml(nlm_category=True)", code_theirs)):
        r = subprocess.run(["/usr/bin/time", "-v", sys.executable, "-c", code], capture_output=True, text=True,
                           cwd=ROOT)
        if r.returncode:
            lines.append(f"| {name} | failed: {r.stderr.strip().splitlines()[-1][:120]} | | |")
            continue
        rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", r.stderr).group(1)) // 1024
        wall = re.search(r"Elapsed \(wall clock\) time.*: (\S+)", r.stderr).group(1)
        lines.append(f"| {name} | {r.stdout.strip()} | {rss} MiB | {wall} |")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True, help="MiniLM folder")
    ap.add_argument("--citations", type=int, default=200)
    ap.add_argument("--xml-citations", type=int, default=30_000)
    ap.add_argument("--sizes", nargs="+", default=["minilm", "bert-base"])
    args = ap.parse_args()
    print(f"CPU: {os.cpu_count()} cores; flags: {cpu_flags()}; torch fp32")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        xml = tmp / "in.xml.gz"
        made = write_xml(xml, NICTA / "test.txt", args.citations, structured=0.0, without_abstract=0, deleted=0)
        jsonl = tmp / "in.jsonl"
        with open(jsonl, "w") as f:
            for r in sources.records(str(xml), Counts()):
                f.write(json.dumps({"id": r.id, "text": " ".join(t for _, _, t in r.sections)}) + "\n")
        n = made["citations"]
        print(f"\n{n} unstructured abstracts from NICTA-PIBOSO test, context none\n")
        print("| model | how | abstracts/s, wall clock | abstracts/s, labelling | time to first output | "
              "peak memory per worker |")
        print("|---|---|---|---|---|---|")
        labels = ["background", "intervention", "outcome", "population", "study design", "other"]
        for size in args.sizes:
            folder = str(tmp / size)
            if size == "minilm":
                trained_like(args.model, "none", folder, labels)
            else:
                bert_base_dir(args.model, "none", labels, folder)
            t, err, mem = timed([sys.executable, "-m", "pubmed_rct", "predict", "--jsonl", str(jsonl), "--model",
                                 folder, "-o", str(tmp / "p.jsonl")], r"pubmed_rct predict")
            bar = re.findall(r"\[(\d+):(\d+)<", err)  # tqdm's elapsed time: the labelling alone
            busy = int(bar[-1][0]) * 60 + int(bar[-1][1]) if bar else 0
            print(f"| {size} | predict --jsonl (threads) | {n / t:.2f} | {n / busy if busy else float('nan'):.2f} | "
                  f"(at the end) | {mem} MiB (one process) |")
            for workers in (1, 2):
                out = tmp / f"out-{size}-{workers}"
                t, err, mem = timed([sys.executable, "-m", "pubmed_rct", "label", str(xml), "--model", folder,
                                     "--out", str(out), "--workers", str(workers), "--chunk", "100"],
                                    r"pyspark\.(daemon|worker)")
                first = re.search(r"first output after ([\d.]+) s", err)
                job = float(re.search(r"; ([\d.]+) s, first output", err).group(1))  # after Spark's start
                print(f"| {size} | label, Spark local[{workers}] | {n / t:.2f} | {n / job:.2f} | "
                      f"{first.group(1) if first else '?'} s | {mem} MiB |")
        if args.xml_citations:
            print(f"\nPeak memory reading {args.xml_citations:,} generated citations (.xml.gz)\n")
            print("| reader | citations | peak RSS | wall |")
            print("|---|---|---|---|")
            print("\n".join(xml_memory(args.xml_citations, tmp)))


if __name__ == "__main__":
    main()
