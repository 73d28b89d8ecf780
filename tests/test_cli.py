"""The command line itself: numbers checked before any work, input read no further than its limit."""
import subprocess
import sys

import pytest

from conftest import ROOT, run

CLI = [sys.executable, "-m", "pubmed_rct"]


@pytest.mark.parametrize("args, option", [
    (["predict", "--jsonl", "two.jsonl", "--batch-size", "-1", "-o", "existing.jsonl"], "--batch-size"),
    (["predict", "--jsonl", "two.jsonl", "--workers", "0", "-o", "existing.jsonl"], "--workers"),
    (["label", "two.jsonl", "--out", "out", "--chunk", "0"], "--chunk"),
    (["label", "two.jsonl", "--out", "out", "--batch", "-5"], "--batch"),
    (["label", "two.jsonl", "--out", "out", "--workers", "x"], "--workers"),
    (["serve", "--threads", "0"], "--threads"),
    (["serve", "--port", "99999"], "--port"),
    (["serve", "--port", "-1"], "--port")])
def test_every_number_is_checked_before_any_work(tmp_path, args, option):
    """#28 E1: `--batch-size -1` labelled nothing and replaced the existing -o file by an empty one; C4, C5:
    `serve --threads 0` never answered and `--port 99999` listened on another port."""
    (tmp_path / "two.jsonl").write_text('"We randomised 120 adults."\n"Pain fell."\n')
    (tmp_path / "existing.jsonl").write_text("earlier output\n")
    r = run([*CLI, *args, "--model", str(tmp_path / "no-model")], tmp_path, {"PYTHONPATH": str(ROOT)}, check=False)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert r.stderr.startswith(f"error: python -m pubmed_rct {args[0]}: argument {option}: ") and "--help" in r.stderr
    assert (tmp_path / "existing.jsonl").read_text() == "earlier output\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["existing.jsonl", "two.jsonl"]


def test_an_endless_file_is_refused_after_the_limit_not_read_whole(tmp_path):
    """#28 E2: `predict -f /dev/zero` read 7.7 GB before the size check. Under a 1.5 GB memory limit the whole
    read fails with MemoryError; reading one character past the limit gives the one-line error."""
    for source in ("-f /dev/zero", "< /dev/zero"):
        r = subprocess.run(f"ulimit -v 1572864; exec {' '.join(CLI)} predict {source} --model {tmp_path}",
                           shell=True, cwd=ROOT, capture_output=True, text=True)
        assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr[-2000:]
        assert "holds more than 20,000 characters; the limit is one abstract" in r.stderr
