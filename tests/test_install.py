"""The package installed (bin/setup: editable, with the `pubmed-rct` command): usable from any folder, while a
stage always runs the code of the copy it runs in (DVC's temporary experiment copies included)."""
import ast
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


WINGS = ["text", "corpus", "modeling", "training", "tracking", "inference", "literature", "search", "serving"]


def imported(path) -> set[str]:
    """The pubmed_rct wings (or top-level modules) that the module at `path` imports, relative imports resolved."""
    parts = path.relative_to(ROOT).with_suffix("").parts  # ("pubmed_rct", wing, module)
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level:
            name = [*parts[:len(parts) - node.level], *(node.module or "").split(".")]
            found.add(name[1] if len(name) > 1 and name[1] else node.names[0].name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            for name in ([node.module] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]):
                if name and name.startswith("pubmed_rct."):
                    found.add(name.split(".")[1])
    return found


def test_every_import_points_down_the_wings():
    """A wing imports only itself, the wings below it and the shared top-level modules (io, choices, lifetime,
    options, params), never a wing above it nor the command line; the shared modules import no wing; only the
    command line (cli, __main__) sits above them all."""
    top = {"cli": len(WINGS), "__main__": len(WINGS) + 1}
    wrong = []
    for path in sorted((ROOT / "pubmed_rct").rglob("*.py")):
        wing = path.relative_to(ROOT / "pubmed_rct").parts[0].removesuffix(".py")
        rank = WINGS.index(wing) if wing in WINGS else top.get(wing, -1)
        for to in imported(path):
            if (WINGS.index(to) if to in WINGS else top.get(to, -1)) > rank:
                wrong.append(f"{path.relative_to(ROOT)} imports {to}")
    assert not wrong, wrong
