import shutil
import subprocess
from pathlib import Path

import pytest

from pubmed_rct.corpus.sources import SPLITS, abstracts_of, group_rows, parse_text, read_source, read_text_file
from pubmed_rct.corpus.store import DataError, read_split, write_split
from pubmed_rct.text.numbers import at_sign
from conftest import CORPUS, HUB_COMMIT, HUB_ID, HUB_REPO, ROOT, make_project, run, set_params
from services import free_port

GOOD = ["###1", "BACKGROUND\tAsthma is common .", "METHODS\tWe ran a trial .", "", "###2", "RESULTS\tIt worked .", ""]


def test_parse_keeps_abstracts_whole_and_ordered():
    rows = parse_text(GOOD, "x.txt")
    assert [(r["abstract_id"], r["sentence_id"], r["num_sentences"], r["label"]) for r in rows] == [
        ("1", 0, 2, "BACKGROUND"), ("1", 1, 2, "METHODS"), ("2", 0, 1, "RESULTS")]
    assert rows[1]["text"] == "We ran a trial ."
    assert abstracts_of(rows) == [[0, 1], [2]]


@pytest.mark.parametrize("lines, message", [
    (["###1", "BACKGROUND no tab here"], "x.txt:2: expected 'LABEL<TAB>sentence'"),
    (["###1", "\tA sentence ."], "x.txt:2: empty label"),
    (["###1", "RESULTS\t   "], "x.txt:2: empty sentence"),
    (["###1", "", "###2", "RESULTS\tok ."], "x.txt:1: abstract '1' has no sentences"),
    (["RESULTS\tok ."], "x.txt:1: sentence before the first"),
    (["###1", "RESULTS\tok .", "###1", "RESULTS\tok ."], "x.txt:3: abstract id '1' appears twice"),
    (["", ""], "x.txt: no abstracts found"),
])
def test_malformed_input_names_file_and_line(lines, message):
    with pytest.raises(DataError, match=message.replace("(", r"\(").replace("'", "'")):
        parse_text(lines, "x.txt")


def test_non_utf8_names_the_line(tmp_path):
    f = tmp_path / "train.txt"
    f.write_bytes(b"###1\nRESULTS\tok .\nMETHODS\tbad \xff byte\n")
    with pytest.raises(DataError, match=r"train.txt:3: not valid UTF-8"):
        read_text_file(f)


def test_a_byte_order_mark_is_accepted_and_lines_still_counted(tmp_path):
    f = tmp_path / "train.txt"
    f.write_bytes("\ufeff###1\nRESULTS\tIt fell by 30\u00a0% .\n".encode())
    assert [(r["abstract_id"], r["label"]) for r in read_text_file(f)] == [("1", "RESULTS")]
    f.write_bytes("\ufeff###1\nRESULTS\tok .\nno tab here\n".encode())
    with pytest.raises(DataError, match=r"train.txt:3: expected 'LABEL<TAB>sentence'"):
        read_text_file(f)


def test_corpus_text_gets_the_clean_up_raw_text_gets(tmp_path):
    for name in ("train.txt", "dev.txt", "test.txt"):
        (tmp_path / name).write_text("###1\nRESULTS\tIt fell by 30\u00a0% in 12\u202fweeks\u200b .\n")
    splits, _ = read_source(str(tmp_path))
    assert splits["train"][0]["text"] == "It fell by 30 % in 12 weeks ."


def test_missing_folder_and_file(tmp_path):
    with pytest.raises(DataError, match="no such folder"):
        read_source(str(tmp_path / "nope"))
    (tmp_path / "train.txt").write_text("###1\nA\tb .\n")
    with pytest.raises(DataError, match="no dev.txt or validation.txt or val.txt for the validation split"):
        read_source(str(tmp_path))


def test_reads_the_fixture_corpus_with_its_labels():
    splits, meta = read_source(str(CORPUS))
    assert {s: len(r) for s, r in splits.items()} == {"train": 284, "validation": 70, "test": 74}
    assert {r["label"] for r in splits["train"]} == {"BACKGROUND", "OBJECTIVE", "METHODS", "RESULTS", "CONCLUSIONS"}
    assert meta["format"] == "text" and len(meta["sha256"]["train"]) == 64


def test_hub_records_are_ordered_and_gaps_closed():
    records = [{"abstract_id": "a", "sentence_id": 5, "label": "results", "text": "late"},
               {"abstract_id": "b", "sentence_id": 0, "label": "methods", "text": "other"},
               {"abstract_id": "a", "sentence_id": 2, "label": "background", "text": "early"}]
    rows = group_rows(records, "hub")
    assert [(r["abstract_id"], r["sentence_id"], r["text"], r["num_sentences"]) for r in rows] == [
        ("a", 0, "early", 2), ("a", 1, "late", 2), ("b", 0, "other", 1)]
    with pytest.raises(DataError, match="repeats a sentence_id"):
        group_rows(records + [{"abstract_id": "a", "sentence_id": 2, "label": "x", "text": "dup"}], "hub")
    with pytest.raises(DataError, match="row 0: empty label"):
        group_rows([{"abstract_id": "a", "sentence_id": 0, "label": " ", "text": "t"}], "hub")


def test_unreachable_hub_says_how_to_go_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    with pytest.raises(DataError, match=r"(?s)armanc/pubmed-rct20k.*hub could not be reached.*-S data.source="):
        read_source("armanc/pubmed-rct20k")


def test_parquet_round_trip(tmp_path):
    rows = parse_text(GOOD, "x.txt")
    write_split(tmp_path / "s.parquet", rows, {"in_loss": [True, False, True]})
    back = read_split(tmp_path / "s.parquet")
    assert [r["text"] for r in back] == [r["text"] for r in rows]
    assert [r["in_loss"] for r in back] == [True, False, True]
    with pytest.raises(DataError, match="not found; run the stage"):
        read_split(tmp_path / "missing.parquet")


def test_a_local_copy_of_the_hub_repo_reads_as_the_hub_does(tmp_path, hub):
    """The README's offline route: the folder that `hf download --repo-type dataset --local-dir` leaves (its
    files and a hidden .cache/), here downloaded from the local hub."""
    copy = tmp_path / "pubmed-rct20k"
    run(["hf", "download", HUB_ID, "--repo-type", "dataset", "--revision", HUB_COMMIT, "--local-dir", str(copy)],
        tmp_path, hub[0])
    assert (copy / ".cache").is_dir() and (copy / "train.jsonl").read_bytes() == (HUB_REPO / "train.jsonl").read_bytes()
    splits, meta = read_source(str(copy))
    assert meta["format"] == "hub-folder" and meta["number_form"] == "@" and "commit" not in meta
    text, text_meta = read_source(str(CORPUS))
    assert text_meta["number_form"] == "digits"
    for split in SPLITS:  # the same sentences in the same order; lower-case labels and `@` as on the hub
        assert [(r["abstract_id"], r["sentence_id"], r["label"], r["text"]) for r in splits[split]] == [
            (r["abstract_id"], r["sentence_id"], r["label"].lower(), at_sign(r["text"])) for r in text[split]]


def download(project: Path, env: dict | None = None, **params):
    set_params(project, **params)
    return run(["python", "stages/download.py"], project, env, check=False)


def assert_fails_cleanly(result, *fragments: str) -> str:
    """Exit 2, one `error:` line naming what happened, no traceback."""
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert result.returncode == 2 and "Traceback" not in result.stderr and len(errors) == 1, result.stderr[-3000:]
    for fragment in fragments:
        assert fragment in errors[0], errors[0]
    return errors[0]


@pytest.fixture
def hub_project(tmp_path, tiny_bert, hub):
    return make_project(tmp_path / "project", tiny_bert, **{"data.source": HUB_ID}), hub[0]


def test_unknown_dataset_or_revision_is_one_clear_line(hub_project):
    project, env = hub_project
    r = download(project, env, **{"data.source": "armanc/no-such-dataset"})
    assert_fails_cleanly(r, "data.source 'armanc/no-such-dataset'", "doesn't exist on the Hub", "check the id")
    r = download(project, env, **{"data.source": HUB_ID, "data.revision": "0" * 40})
    assert_fails_cleanly(r, f"data.revision '{'0' * 40}'", "check data.revision")
    assert not (project / "data/raw").exists()


def test_unreachable_hub_is_one_clear_line_with_the_offline_route(hub_project, tmp_path):
    project, _ = hub_project
    closed = {"HF_ENDPOINT": f"http://127.0.0.1:{free_port()}", "HF_HOME": str(tmp_path / "empty-cache")}
    r = download(project, closed)  # the hub client retries for about 25 s before datasets gives up
    assert_fails_cleanly(r, f"data.source '{HUB_ID}'", "hub could not be reached", "-S data.source=")


@pytest.mark.parametrize("damage, fragments", [
    ("drop-test", ["no 'test' split", "test.*"]),
    ("rename-label", ["split train: missing column 'label'", "abstract_id, sentence_id, label, text"]),
    ("rename-label-in-train", ["could not be read as one table", "columns abstract_id, sentence_id, label, text"]),
])
def test_a_copy_missing_a_split_or_column_is_one_clear_line(hub_project, tmp_path, damage, fragments):
    project, _ = hub_project
    copy = tmp_path / "copy"
    shutil.copytree(HUB_REPO, copy)
    if damage == "drop-test":
        (copy / "test.jsonl").unlink()
    else:
        for split in ("train",) if damage.endswith("in-train") else ("train", "dev", "test"):
            f = copy / f"{split}.jsonl"
            f.write_text(f.read_text().replace('"label":', '"role":'))
    assert_fails_cleanly(download(project, **{"data.source": str(copy)}), f"data.source '{copy}'", *fragments)


def test_full_disk_is_one_clear_line_and_keeps_the_last_output(tmp_path, tiny_bert):
    """A real ENOSPC: data/ on a tmpfs just big enough for the previous output (own mount namespace)."""
    project = make_project(tmp_path / "project", tiny_bert)
    assert download(project).returncode == 0
    script = f"""set -e
    cp -a data/raw {tmp_path}/saved
    mount -t tmpfs -o size=$(( $(du -sk data/raw | cut -f1) + 8 ))k tmpfs data
    cp -a {tmp_path}/saved data/raw
    sha256sum data/raw/* > {tmp_path}/before
    set +e
    python stages/download.py 2> {tmp_path}/stderr; echo $? > {tmp_path}/status
    sha256sum -c --quiet {tmp_path}/before && echo intact > {tmp_path}/intact
    ls -a data > {tmp_path}/listing"""
    run(["unshare", "--map-root-user", "--mount", "sh", "-c", script], project)
    status = int((tmp_path / "status").read_text())
    result = subprocess.CompletedProcess([], status, "", (tmp_path / "stderr").read_text())
    assert_fails_cleanly(result, "no space left on the device", "outputs of earlier runs are untouched")
    assert (tmp_path / "intact").is_file()  # the previous data/raw, byte for byte
    assert (tmp_path / "listing").read_text().split() == [".", "..", "raw"]  # no temporary folder left behind


def test_a_damaged_parquet_file_is_named_with_the_way_back(tmp_path, tiny_bert):
    """#22 row 26: scrambled middle bytes of data/prepared/test.parquet gave "OSError: Corrupt snappy compressed
    data." as a traceback, the file unnamed."""
    from conftest import make_project
    p = make_project(tmp_path / "p", tiny_bert)
    run(["dvc", "repro", "prepare"], p)
    test = p / "data/prepared/test.parquet"
    data = bytearray(test.read_bytes())
    middle = len(data) // 3
    data[middle:middle + 200] = bytes(range(200))  # the magic bytes at both ends intact
    test.write_bytes(bytes(data))
    r = run(["python", "stages/tokenization.py"], p, check=False)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert "data/prepared/test.parquet: cannot be read as Parquet" in r.stderr
    assert "`dvc checkout data/prepared`" in r.stderr and "`dvc repro -f prepare`" in r.stderr


def test_changed_bytes_anywhere_in_a_parquet_file_are_named_never_read_as_other_rows(tmp_path):
    """#28 A26: of 20 corrupted copies of data/prepared/test.parquet, 4 gave a bare "'utf-8' codec can't
    decode" and 4 were read with changed rows. Page checksums (written and verified) and a check of the footer
    find them; here 300 copies, each some bytes changed at a random place."""
    import random
    from pubmed_rct.corpus.sources import read_text_file
    from pubmed_rct.corpus.store import COLUMNS, DataError, read_split, write_split
    rows = read_text_file(ROOT / "tests/fixtures/rct/test.txt")
    folder = tmp_path / "prepared"
    write_split(folder / "good.parquet", rows)
    good, data = read_split(folder / "good.parquet"), (folder / "good.parquet").read_bytes()
    damaged, outcomes = folder / "test.parquet", {"named": 0, "same": 0}
    for seed in range(300):
        rng, changed = random.Random(seed), bytearray(data)
        at = rng.randrange(8, len(data) - 8 - 16)  # the magic bytes at both ends intact
        for i in range(rng.randint(1, 16)):
            changed[at + i] ^= rng.randrange(1, 256)
        damaged.write_bytes(bytes(changed))
        try:
            assert read_split(damaged) == good, f"seed {seed}: changed rows read as good"
            outcomes["same"] += 1  # bytes the rows do not depend on (statistics, padding)
        except DataError as e:
            assert f"{damaged}: " in str(e) and "dvc repro -f prepare" in str(e), str(e)
            outcomes["named"] += 1
    assert outcomes["named"] > 250 and set(COLUMNS) <= set(good[0])
