import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT
from pubmed_rct.io import OutputError, atomic_path, check_output, read_json, write_json


def test_failed_write_keeps_the_old_file_and_leaves_no_temp(tmp_path):
    target = tmp_path / "out.json"
    write_json(target, {"v": 1})
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("crash")
    assert read_json(target) == {"v": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]


def test_folder_replaced_whole(tmp_path):
    target = tmp_path / "d"
    (target).mkdir()
    (target / "old").write_text("x")
    with atomic_path(target) as tmp:
        tmp.mkdir()
        (tmp / "new").write_text("y")
    assert [p.name for p in target.iterdir()] == ["new"]
    assert [p.name for p in tmp_path.iterdir()] == ["d"]


def test_a_file_never_replaces_a_folder_and_the_folder_is_kept(tmp_path):
    """#22 row 23: -o DIR replaced the folder and all it held by the output file."""
    target = tmp_path / "d"
    (target / "sub").mkdir(parents=True)
    (target / "keep.txt").write_text("keep")
    with pytest.raises(OutputError, match="is a folder"):
        with atomic_path(target) as tmp:
            tmp.write_text("out")
    assert (target / "keep.txt").read_text() == "keep" and (target / "sub").is_dir()
    assert [p.name for p in tmp_path.iterdir()] == ["d"]  # no temp folder left


@pytest.mark.parametrize("name", [".", "..", "/", ""])
def test_the_current_folder_or_above_is_never_a_target(tmp_path, monkeypatch, name):
    """#22 row 24: atomic_path('.') removed everything in the current folder (its temp dir's parent)."""
    here = tmp_path / "e" / "f"
    here.mkdir(parents=True)
    (here / "canary").write_text("alive")
    monkeypatch.chdir(here)
    with pytest.raises(OutputError, match="refusing"):
        with atomic_path(name or str(here)) as tmp:
            tmp.write_text("out")
    assert (here / "canary").read_text() == "alive" and sorted(p.name for p in here.iterdir()) == ["canary"]
    assert sorted(p.name for p in here.parent.iterdir()) == ["f"]


def test_check_output_refuses_folders_the_input_and_unwritable_places(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "d").mkdir()
    src = tmp_path / "in.jsonl"
    src.write_text("{}\n")
    for bad in ("d", "d/", ".", "/", str(tmp_path)):
        with pytest.raises(OutputError, match="names a folder"):
            check_output(bad)
    with pytest.raises(OutputError, match="is the input file"):
        check_output("./in.jsonl", (str(src),))
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputError, match="cannot be written"):
        check_output("file/out.jsonl")  # its folder would be a file
    assert check_output("new/deeper/out.jsonl") == Path("new/deeper/out.jsonl")
    assert not (tmp_path / "new").exists()  # checked, nothing made
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d", "file", "in.jsonl"]


def test_check_output_refuses_a_read_only_folder_and_file(tmp_path):
    """#22 row 22, as root: a read-only bind mount (own mount namespace) stands for a folder nobody may write."""
    ro = tmp_path / "ro"
    ro.mkdir()
    (ro / "old.jsonl").write_text("old")
    script = (f"mount --bind {ro} {ro} && mount -o remount,ro,bind {ro} && {sys.executable} -c "
              f"\"from pubmed_rct.io import check_output; check_output('{ro}/new.jsonl')\"; "
              f"{sys.executable} -c \"from pubmed_rct.io import check_output; check_output('{ro}/old.jsonl')\"")
    r = subprocess.run(["unshare", "--map-root-user", "--mount", "sh", "-c", script], capture_output=True,
                       text=True, cwd=ROOT)
    assert r.stderr.count("cannot be written (Read-only file system") == 2, r.stderr
