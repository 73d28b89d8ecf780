"""The package installed (bin/setup: editable, with the `pubmed-rct` command): usable from any folder, while a
stage always runs the code of the copy it runs in (DVC's temporary experiment copies included)."""
import subprocess
import sys

import pytest

from conftest import ROOT, VENV_BIN, make_project, run


def test_the_command_works_from_any_folder(tmp_path):
    for command in ([str(VENV_BIN / "pubmed-rct")], [sys.executable, "-m", "pubmed_rct"]):
        r = subprocess.run([*command, "--help"], cwd=tmp_path, capture_output=True, text=True,
                           env={"PATH": "/usr/bin:/bin"})  # no venv on PATH, no PYTHONPATH: as cron would run it
        assert r.returncode == 0, r.stderr
        for name in ("predict", "serve", "label", "index", "search", "promote", "export-onnx"):
            assert name in r.stdout
    r = subprocess.run([sys.executable, "-c", "import pubmed_rct; print(pubmed_rct.__file__)"], cwd=tmp_path,
                       capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"})
    assert r.stdout.strip() == str(ROOT / "pubmed_rct" / "__init__.py")  # this checkout's code, installed editable


@pytest.mark.starts("dvc exp run")
def test_a_dvc_experiment_copy_runs_its_own_code(tmp_path, tiny_bert):
    """`dvc exp run --temp` (and --queue) run the pipeline in a copy under .dvc/tmp/exps: its stages import the
    copy's package, never the installed checkout's, so each experiment runs the code it was queued with."""
    p = make_project(tmp_path / "p", tiny_bert)
    with open(p / "pubmed_rct" / "__init__.py", "a") as f:  # an uncommitted change, carried into the copy
        f.write('import sys\nprint(f"pubmed_rct from {__file__}", file=sys.stderr)\n')
    r = run(["dvc", "exp", "run", "--temp", "download"], p)
    found = [line for line in (r.stdout + r.stderr).splitlines() if line.startswith("pubmed_rct from ")]
    assert found and all("/.dvc/tmp/exps/" in line and line.endswith("/pubmed_rct/__init__.py") for line in found), \
        r.stdout + r.stderr
