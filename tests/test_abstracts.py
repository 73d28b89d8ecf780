import pytest

from pubmed_rct.abstracts import (DataError, abstracts_of, group_rows, parse_text, read_source, read_split,
                                  read_text_file, write_split)
from conftest import CORPUS

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
