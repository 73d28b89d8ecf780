"""`python -m pubmed_rct predict`: text, JSON, Markdown, stdin, batch JSON Lines, and bad input."""
import json
import re
import subprocess
import sys

import pytest
import torch

from conftest import ABSTRACT, ROLES, ROOT, run
from pubmed_rct.modeling.model import load_trained
from pubmed_rct.inference.predict import Labeler

PREDICT = [sys.executable, "-m", "pubmed_rct", "predict"]


def test_labeler_labels_each_sentence(sentence_model):
    labelled = Labeler.load(sentence_model).label([ABSTRACT, "Aspirin is safe and effective for asthma."])
    assert [s["label"] for s in labelled[0]] == ROLES
    assert labelled[1][0]["label"] == "CONCLUSIONS"
    s = labelled[0][2]
    assert s["sentence"].startswith("Patients were randomly") and 0 < s["probability"] <= 1
    assert sum(s["probabilities"].values()) == pytest.approx(1, abs=1e-3)


def test_chunks_labelled_in_parallel_match_one_at_a_time(sentence_model):
    labeler = Labeler.load(sentence_model)
    texts = [ABSTRACT, " ", "Aspirin is safe and effective for asthma.", ABSTRACT.replace("12 weeks", "a year")] * 3
    chunks = [texts[i:i + 2] for i in range(0, len(texts), 2)]
    threads = torch.get_num_threads()
    serial = list(labeler.label_chunks(chunks, workers=1))
    parallel = list(labeler.label_chunks(chunks, workers=3))
    assert torch.get_num_threads() == threads  # restored after the worker threads
    assert [type(x).__name__ for c in parallel for x in c] == ["list", "InputError", "list", "list"] * 3
    assert [[x if isinstance(x, list) else str(x) for x in c] for c in parallel] == \
        [[x if isinstance(x, list) else str(x) for x in c] for c in serial]
    assert [s["label"] for s in parallel[0][0]] == ROLES


def test_text_json_and_markdown_output(sentence_model):
    text = run([*PREDICT, "--model", str(sentence_model), ABSTRACT], ROOT).stdout
    assert [l for l in text.splitlines() if l.endswith(":")] == [f"{r}:" for r in ROLES]
    assert "\033[" not in text  # no colour when not a terminal
    out = json.loads(run([*PREDICT, "--model", str(sentence_model), "--format", "json", ABSTRACT], ROOT).stdout)
    assert [s["label"] for s in out["sentences"]] == ROLES and [s["label"] for s in out["sections"]] == ROLES
    md = run([*PREDICT, "--model", str(sentence_model), "--format", "markdown"], ROOT, check=False)
    assert md.returncode == 2 and "empty" in md.stderr  # stdin was empty
    md = run(f"echo '{ABSTRACT}' | {sys.executable} -m pubmed_rct predict --format markdown --model {sentence_model}", ROOT)
    assert md.stdout.startswith("**BACKGROUND:** Asthma remains")


def test_batch_jsonl_labels_good_lines_and_names_bad_ones(sentence_model, tmp_path):
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    src.write_text("\n".join([json.dumps({"id": "a", "text": ABSTRACT}), "{not json", json.dumps({"id": "e", "text": " "}),
                              json.dumps("Aspirin is safe and effective for asthma.")]) + "\n",
                   encoding="utf-8-sig")  # with a byte-order mark, as Windows editors write
    r = run([*PREDICT, "--model", str(sentence_model), "--jsonl", str(src), "-o", str(out), "--batch-size", "2"],
            ROOT, check=False)
    assert r.returncode == 1
    assert f"{src}:2: not JSON" in r.stderr and f"{src}:3: the text is empty" in r.stderr
    lines = [json.loads(l) for l in out.read_text().splitlines()]
    assert [l["id"] for l in lines] == ["a", 4]
    assert [s["label"] for s in lines[0]["sentences"]] == ROLES


STRUCTURED = ("BACKGROUND: Asthma remains a major public health problem worldwide.\nObjective. The objective was to "
              "evaluate aspirin for asthma.\nMETHODS\nPatients were randomly assigned to aspirin or control for 12 "
              "weeks. RESULTS: Pain decreased by 30 % in the aspirin group (p < 0.05).\nConclusions - Aspirin is safe "
              "and effective for asthma.")


def test_a_structured_abstract_keeps_its_headings_beside_the_labels(sentence_model):
    r = run([*PREDICT, "--model", str(sentence_model), STRUCTURED, "--format", "json"], ROOT)
    sentences = json.loads(r.stdout)["sentences"]
    assert [s["label"] for s in sentences] == ROLES  # the model reads the sentences without their headings
    assert [s["heading"] for s in sentences] == ["BACKGROUND", "Objective", "METHODS", "RESULTS", "Conclusions"]
    assert sentences[0]["sentence"] == "Asthma remains a major public health problem worldwide."
    text = run([*PREDICT, "--model", str(sentence_model), STRUCTURED], ROOT).stdout
    assert "  [Objective]" in text and "Objective." not in text
    markdown = run([*PREDICT, "--model", str(sentence_model), STRUCTURED, "--format", "markdown"], ROOT).stdout
    assert "**METHODS:** _METHODS:_ Patients were randomly" in markdown
    assert Labeler.load(sentence_model).label([ABSTRACT])[0][0]["heading"] is None


def test_a_file_pasted_from_a_pdf_is_labelled(sentence_model, tmp_path):
    pasted = tmp_path / "abstract.txt"  # byte-order mark, no-break spaces, a soft hyphen, a zero-width space
    pasted.write_text(ABSTRACT.replace("12 weeks", "12\u00a0weeks").replace("30 %", "30\u202f%")
                      .replace("randomly", "ran\u00addomly\u200b"), encoding="utf-8-sig")
    r = run([*PREDICT, "--model", str(sentence_model), "-f", str(pasted), "--format", "json"], ROOT)
    sentences = json.loads(r.stdout)["sentences"]
    assert [s["label"] for s in sentences] == ROLES
    assert sentences[2]["sentence"] == "Patients were randomly assigned to aspirin or control for 12 weeks."


def test_bad_input_and_missing_model(sentence_model, tmp_path):
    binary = tmp_path / "bin.txt"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe")
    r = run([*PREDICT, "--model", str(sentence_model), "-f", str(binary)], ROOT, check=False)
    assert r.returncode == 2 and "not UTF-8" in r.stderr
    r = run([*PREDICT, "--model", str(tmp_path / "nowhere"), ABSTRACT], ROOT, check=False)
    assert r.returncode == 2 and "no trained model here" in r.stderr and "Traceback" not in r.stderr


def test_a_model_refuses_input_built_for_another_mode(sentence_model):
    with pytest.raises(ValueError, match="trained with context 'none', input was built for 'abstract'"):
        load_trained(sentence_model, context="abstract")


ONE = json.dumps({"id": 1, "text": "We randomised 120 adults."}) + "\n"


def test_o_never_deletes_what_is_there(sentence_model, tmp_path):
    """#22 rows 23, 24: `-o d` replaced a folder by the output file; `-o .` deleted the current folder's files."""
    src = tmp_path / "one.jsonl"
    src.write_text(ONE)
    (tmp_path / "d" / "sub").mkdir(parents=True)
    (tmp_path / "d" / "keep.txt").write_text("keep")
    e = tmp_path / "e"
    e.mkdir()
    (e / "canary").write_text("alive")
    for output, cwd in (("d", tmp_path), (".", e), ("/", e), (str(src), tmp_path)):
        r = run([*PREDICT, "--model", str(sentence_model), "--jsonl", str(src), "-o", output], cwd,
                {"PYTHONPATH": str(ROOT)}, check=False)
        assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
        assert ("is the input file" if output == str(src) else "names a folder") in r.stderr
    assert (tmp_path / "d" / "keep.txt").read_text() == "keep" and (tmp_path / "d" / "sub").is_dir()
    assert sorted(p.name for p in e.iterdir()) == ["canary"] and src.read_text() == ONE
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d", "e", "one.jsonl"]


def test_an_unwritable_output_is_refused_before_any_work(sentence_model, tmp_path):
    """#22 row 22: an immutable -o file failed with a PermissionError traceback after labelling everything."""
    src, out = tmp_path / "one.jsonl", tmp_path / "out.jsonl"
    src.write_text(ONE)
    out.write_text("earlier output")
    run(["chattr", "+i", str(out)], tmp_path)
    try:
        r = run([*PREDICT, "--model", str(tmp_path / "no-model"), "--jsonl", str(src), "-o", str(out)], ROOT,
                check=False)  # the model is never loaded: the output is checked first
    finally:
        run(["chattr", "-i", str(out)], tmp_path)
    assert r.returncode == 2 and f"-o {out}: cannot be written" in r.stderr and "Traceback" not in r.stderr
    assert out.read_text() == "earlier output"


def test_bad_lines_are_named_and_the_good_ones_written(sentence_model, tmp_path):
    """#22 rows 19, 20: a lone surrogate (TypeError) or a non-UTF-8 line (no line named) lost every good line."""
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    src.write_bytes(b"".join([ONE.encode(), b'{"text":"a \\ud800 b"}\n', b'{"id": 3, "text": "caf\xe9 au lait."}\n',
                              json.dumps({"id": 4, "text": ABSTRACT + "\u2028" + ABSTRACT}).encode() + b"\n"]))
    r = run([*PREDICT, "--model", str(sentence_model), "--jsonl", str(src), "-o", str(out)], ROOT, check=False)
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    assert f"{src}:2: the text is not valid Unicode: a lone surrogate U+D800 at character 3" in r.stderr
    assert f"{src}:3: not UTF-8 (byte 0xe9 at column 23)" in r.stderr
    assert "2 of 4 abstracts labelled, 2 bad line(s)" in r.stderr
    assert [json.loads(l)["id"] for l in out.read_text().splitlines()] == [1, 4]  # U+2028 ends no line


def test_a_folder_or_a_non_utf8_argument_is_one_line(sentence_model, tmp_path):
    """#22 rows 16, 17: `-f DIR` (IsADirectoryError) and a Latin-1 argument (TypeError) were tracebacks."""
    r = run([*PREDICT, "--model", str(sentence_model), "-f", str(tmp_path)], ROOT, check=False)
    assert r.returncode == 2 and f"-f {tmp_path}: cannot be read (Is a directory)" in r.stderr
    assert "Traceback" not in r.stderr
    r = subprocess.run([*PREDICT, "--model", str(sentence_model), b"caf\xe9 patients were randomised."],
                       capture_output=True, cwd=ROOT)
    err = r.stderr.decode()
    assert r.returncode == 2 and "the argument is not UTF-8 (byte 0xe9 at offset 3)" in err and "Traceback" not in err


def test_o_writes_a_single_abstract_atomically(sentence_model, tmp_path):
    out = tmp_path / "labelled.json"
    run([*PREDICT, "--model", str(sentence_model), "--format", "json", "-o", str(out), ABSTRACT], ROOT)
    assert [s["label"] for s in json.loads(out.read_text())["sentences"]] == ROLES
    assert sorted(p.name for p in tmp_path.iterdir()) == ["labelled.json"]


def test_every_line_is_labelled_or_named_and_no_good_record_is_lost(sentence_model, tmp_path):
    """#22 item 4, against `predict --jsonl` as a user runs it: files of random lines (any JSON, any Unicode,
    raw bytes) with good records among them. Exit 0 or 1, never a traceback; every good record is in the output;
    every other non-blank line is either labelled or named by its line number."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st
    from strategies import GOOD_TEXT, RECORDS, encoded

    line = st.one_of(st.builds(lambda t: ("good", t), GOOD_TEXT),
                     st.builds(lambda r, a: ("any", encoded(r, a)), RECORDS, st.booleans()),
                     st.builds(lambda b: ("any", b), st.binary(max_size=80).filter(lambda b: b"\n" not in b)))

    @settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None)
    @given(st.lists(line, min_size=1, max_size=12))
    def labelled(lines):
        raw = [json.dumps({"id": n, "text": x}).encode() if kind == "good" else x
               for n, (kind, x) in enumerate(lines, 1)]
        src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
        src.write_bytes(b"\n".join(raw) + b"\n")
        out.unlink(missing_ok=True)
        r = run([*PREDICT, "--model", str(sentence_model), "--jsonl", str(src), "-o", str(out), "--workers", "1"],
                ROOT, check=False)
        assert r.returncode in (0, 1) and "Traceback" not in r.stderr, r.stderr[-2000:]
        written = [json.loads(l) for l in out.read_text().splitlines()]
        named = {int(m) for m in re.findall(rf"{re.escape(str(src))}:(\d+): ", r.stderr)}
        good = {n for n, (kind, _) in enumerate(lines, 1) if kind == "good"}
        ids = [w["id"] for w in written]  # any JSON value: a line's own id may be a list or an object
        assert all(n in ids for n in good) and not good & named
        assert len(written) + len(named) == sum(1 for x in raw if x.decode("utf-8", "replace").strip())
        assert (r.returncode == 1) == bool(named)

    labelled()
