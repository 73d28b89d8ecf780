"""The label job on one machine, each run paired with `predict --jsonl` on the same abstracts: abstracts/s (wall
clock, and steady state once the workers' models are loaded), time to the first part, peak memory of the whole
process tree, and the CPU seconds of the driver's Python process. And the XML reader alone (memory, speed).

  python benchmarks/label_speed.py --model MINILM_DIR --sizes minilm bert-base --citations 3000   # efficiency
  python benchmarks/label_speed.py --model MINILM_DIR --sizes tiny --citations 30000 --files 1 4  # the ceiling
  python benchmarks/label_speed.py ... --root PATH_OF_ANOTHER_CHECKOUT   # the same, run by another version

Models (speed only, heads untrained): MiniLM and a BERT-base-sized model (SciBERT's shape) as the train stage
writes them, with their int8 ONNX Runtime file (what CPU inference runs); `tiny` is a near-free model (1 layer,
hidden 32), where the engine is all that is left. Abstracts: NICTA-PIBOSO's, unstructured, as generated PubMed
XML (and the same as JSON Lines for predict). Steady state: the abstracts of every part but the first, over the
time from the first part to the last (parts' modification times); for predict, its progress bar's own time.
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

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from make_pubmed_xml import write as write_xml  # noqa: E402

NICTA = HERE.parents[1] / "shared" / "data" / "nicta-piboso"
LABELS = ["background", "intervention", "outcome", "population", "study design", "other"]
DRIVER = ("import atexit, resource, runpy, sys\n"  # the driver's own CPU, read at its exit (not its JVM's)
          "atexit.register(lambda: print('driver-cpu-s', sum(resource.getrusage(resource.RUSAGE_SELF)[:2]),"
          " file=sys.stderr))\n"
          "sys.argv = ['pubmed_rct', *sys.argv[1:]]\n"
          "runpy.run_module('pubmed_rct', run_name='__main__', alter_sys=True)\n")


def cpu_flags() -> str:
    flags = set(Path("/proc/cpuinfo").read_text().split("flags")[1].split("\n")[0].split())
    return ", ".join(f for f in ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16") if f in flags) or "none"


def tree_memory(pid: int, stop: threading.Event, peak: dict) -> None:
    """The highest sum of RSS, and of PSS (shared pages split between the processes that share them), over a
    process and all its descendants, sampled until `stop`."""
    import psutil
    while not stop.is_set():
        try:
            procs = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
        except psutil.Error:
            break
        rss = pss = 0
        for p in procs:
            try:
                info = p.memory_full_info()
                rss, pss = rss + info.rss, pss + info.pss
            except psutil.Error:
                continue
        peak["rss"], peak["pss"] = max(peak.get("rss", 0), rss), max(peak.get("pss", 0), pss)
        time.sleep(0.5)


def timed(cmd: list[str], cwd: Path, env: dict) -> tuple[float, str, dict]:
    """(seconds, stderr, peak memory in MiB and the start time) of a command."""
    stop, peak = threading.Event(), {"started": time.time()}
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    watcher = threading.Thread(target=tree_memory, args=(proc.pid, stop, peak), daemon=True)
    watcher.start()
    _, err = proc.communicate()
    elapsed = time.perf_counter() - start
    stop.set()
    watcher.join()
    if proc.returncode not in (0, 1):
        raise SystemExit(f"{cmd} failed:\n{err[-3000:]}")
    return elapsed, err, {k: v / 2 ** 20 if k != "started" else v for k, v in peak.items()}


def model_folder(size: str, minilm: str, folder: Path) -> Path:
    """A model folder as the train stage writes it, with its int8 ONNX file."""
    from transformers import BertConfig, BertModel
    from pubmed_rct.modeling.model import build_model, load_tokenizer
    from pubmed_rct.modeling.spec import Spec
    SPEC = Spec("none", 128, 512, "digits")
    from pubmed_rct.inference.onnx_runtime import export
    if size == "minilm":
        model = build_model(minilm, LABELS, SPEC)
    else:
        shape = {"bert-base": {}, "tiny": dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                                intermediate_size=64)}[size]
        with tempfile.TemporaryDirectory() as tmp:
            BertModel(BertConfig(vocab_size=30522, **shape)).save_pretrained(tmp)
            model = build_model(tmp, LABELS, SPEC)
    model.save_pretrained(folder)
    load_tokenizer(minilm).save_pretrained(folder)
    export(folder, "int8")
    return folder


def part_times(out: Path) -> list[tuple[float, int | None]]:
    """(modification time, abstracts) of each part the manifest lists, in time order."""
    import pyarrow.parquet as pq
    manifest = json.loads((out / "manifest.json").read_text())
    done = []
    for entry in manifest["inputs"].values():
        units = entry.get("units")  # (an older job's manifest has none: its parts' ids are counted)
        for i, name in enumerate(entry["parts"]):
            n = units[str(i)][3] if units else len(set(pq.read_table(out / name, columns=["id"])["id"].to_pylist()))
            done.append(((out / name).stat().st_mtime, n))
    return sorted(done)


def steady_rate(done: list[tuple[float, int | None]]) -> float:
    """Abstracts/s from the first part to the last (the first part's abstracts left out)."""
    if len(done) < 2 or done[-1][0] <= done[0][0] or any(n is None for _, n in done):
        return float("nan")
    return sum(n for _, n in done[1:]) / (done[-1][0] - done[0][0])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True, help="MiniLM folder (its tokenizer; its weights for minilm)")
    ap.add_argument("--sizes", nargs="+", default=["minilm", "bert-base"], choices=["minilm", "bert-base", "tiny"])
    ap.add_argument("--citations", type=int, default=3000)
    ap.add_argument("--files", type=int, nargs="+", default=[1], help="the citations spread over this many files")
    ap.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)))
    ap.add_argument("--root", type=Path, default=HERE.parent, help="the checkout whose label job runs")
    ap.add_argument("--no-predict", action="store_true", help="label only (another checkout's run beside this)")
    ap.add_argument("--keep", type=Path, help="keep the models here (and reuse them on the next run)")
    args = ap.parse_args()
    env = {**os.environ, "PYTHONPATH": str(args.root), "MLFLOW_TRACKING_URI": ""}
    print(f"checkout {args.root}; {os.cpu_count()} cores, CPU flags {cpu_flags()}; {args.workers} workers")
    print("| model | files | how | abstracts | wall s | abstracts/s wall | steady abstracts/s | first part s | "
          "peak RSS MiB (tree) | peak PSS MiB (tree) | driver CPU s per 1,000 |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for files in args.files:
            inputs = tmp / f"in-{files}"
            inputs.mkdir()
            per = args.citations // files
            for i in range(files):
                write_xml(inputs / f"pubmed26n{i + 1:04d}.xml.gz", NICTA / "train.txt", per, structured=0.0,
                          without_abstract=0.0, deleted=0, first_pmid=30_000_000 + i * per, seed=i)
            jsonl = tmp / f"in-{files}.jsonl"
            from pubmed_rct.literature import reading
            with open(jsonl, "w") as f:
                for path in sorted(inputs.iterdir()):
                    for r in reading.read(str(path), 0, 10 ** 9):
                        f.write(json.dumps({"id": r.id, "text": " ".join(t for _, _, t in r.sections)}) + "\n")
            n = args.citations - args.citations % files
            for size in args.sizes:
                folder = (args.keep or tmp) / size
                if not (folder / "model.int8.onnx").is_file():
                    model_folder(size, args.model, folder)
                if not args.no_predict:
                    t, err, mem = timed([sys.executable, "-m", "pubmed_rct", "predict", "--jsonl", str(jsonl),
                                         "--model", str(folder), "-o", str(tmp / "p.jsonl"), "--workers",
                                         str(args.workers)], args.root, env)
                    bar = re.findall(r"\[(\d+):(\d+)<", err)  # tqdm's elapsed time: the labelling alone
                    busy = int(bar[-1][0]) * 60 + int(bar[-1][1]) if bar else 0
                    print(f"| {size} | {files} | predict --jsonl | {n:,} | {t:.1f} | {n / t:.1f} | "
                          f"{n / busy if busy else float('nan'):.1f} | (at the end) | {mem.get('rss', 0):,.0f} | "
                          f"{mem.get('pss', 0):,.0f} | |", flush=True)
                out = tmp / f"out-{size}-{files}"
                t, err, mem = timed([sys.executable, "-c", DRIVER, "label", str(inputs), "--model", str(folder),
                                     "--out", str(out), "--workers", str(args.workers)], args.root, env)
                cpu = float(re.search(r"driver-cpu-s ([\d.]+)", err).group(1))
                done = part_times(out)
                print(f"| {size} | {files} | label | {n:,} | {t:.1f} | {n / t:.1f} | {steady_rate(done):.1f} | "
                      f"{done[0][0] - mem['started']:.1f} | {mem.get('rss', 0):,.0f} | {mem.get('pss', 0):,.0f} | "
                      f"{1000 * cpu / n:.2f} |", flush=True)


if __name__ == "__main__":
    main()
