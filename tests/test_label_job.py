"""`python -m pubmed_rct label`: generated PubMed XML (the real DTD's shape), JSON Lines and Parquet, local and
on S3 (rclone), on a local Spark; resumed after a real kill; refusing another model's folder; bad input."""
import contextlib
import gzip
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter

import pyarrow.parquet as pq
import pytest

import services
from conftest import ROOT, VENV_BIN, run
from make_pubmed_xml import write as write_xml
from pubmed_rct.literature import reading
from pubmed_rct.literature.worker import split_record

LABEL = [sys.executable, "-m", "pubmed_rct", "label"]
FIXTURE = ROOT / "tests" / "fixtures" / "rct" / "test.txt"
ENV = {"PYTHONPATH": str(ROOT), "MLFLOW_TRACKING_URI": ""}


def expected(uri: str) -> dict[str, int]:
    """Sentences per id in an input, as the job splits them (no model needed)."""
    out = {}
    for r in reading.read(uri, 0, 10 ** 9):
        if not r.error and r.skipped is None and r.deleted is None:
            try:
                out[str(r.id)] = len(split_record({"text": r.text, "sections": r.sections}))
            except ValueError:
                pass
    return out


def rows(out):
    manifest = json.loads((out / "manifest.json").read_text())
    parts = [out / p for e in manifest["inputs"].values() for p in e["parts"]]
    assert sorted(p.name for p in (out / "sentences").glob("*")) == sorted(p.name for p in parts)
    return pq.read_table(parts).to_pylist() if parts else [], manifest


@pytest.fixture(scope="module")
def literature(tmp_path_factory):
    """Two PubMed XML files (structured and unstructured abstracts, citations without abstract, a
    DeleteCitation), a truncated .gz, XML that is not well formed, and JSON Lines with bad lines."""
    d = tmp_path_factory.mktemp("literature")
    a = write_xml(d / "pubmed26n0001.xml.gz", FIXTURE, 30, structured=0.5, without_abstract=0.1, seed=1)
    write_xml(d / "pubmed26n0002.xml", FIXTURE, 12, structured=0.5, first_pmid=40_000_000, seed=2)
    whole = gzip.compress((d / "pubmed26n0002.xml").read_bytes())
    (d / "truncated.xml.gz").write_bytes(whole[: len(whole) // 2])
    (d / "broken.xml").write_text("<PubmedArticleSet><PubmedArticle><MedlineCitation><PMID>1</PMID>"
                                  "</PubmedArticle></PubmedArticleSet>")
    (d / "more.jsonl").write_bytes(b"\n".join([
        json.dumps({"id": "j1", "text": "We randomised 120 adults. Pain fell by 30 % (p < 0.05)."}).encode(),
        b'{"id": "j2", "text": "caf\xe9 au lait."}', json.dumps({"id": "j3", "text": "   "}).encode(),
        json.dumps({"id": "j4", "text": "word " * 50_000}).encode(),
        json.dumps({"id": "j5", "text": "RESULT(S): Pain fell by 30 %. CONCLUSION(S): Aspirin works."}).encode()]))
    return d, a


def test_a_literature_is_labelled_with_the_authors_labels_and_an_agreement_report(literature, sentence_model,
                                                                                   tmp_path):
    d, made = literature
    out = tmp_path / "labelled"
    r = run([*LABEL, str(d), "--model", str(sentence_model), "--out", str(out), "--relabel", "--workers", "2",
             "--chunk", "10", "--batch", "5"], ROOT, ENV, check=False)
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr[-3000:]
    assert f"{d / 'truncated.xml.gz'}: the compressed file breaks off" in r.stderr
    assert f"{d / 'broken.xml'}: not well-formed XML at line 1" in r.stderr
    assert f"{d / 'more.jsonl'}:2: not UTF-8 (byte 0xe9" in r.stderr and f"{d / 'more.jsonl'}:3: the" in r.stderr
    assert f"{d / 'more.jsonl'}:4: the text has 250,000 characters; the limit is 20,000" in r.stderr
    summary = r.stderr.strip().splitlines()[-1]
    assert "deleted citations 6" in summary and f"without abstract {made['no_abstract']}" in summary
    assert "bad records 3 {'not_utf8': 1, 'empty': 1, 'too_long': 1}; bad files 2 {'bad_xml': 2}" in summary
    assert "agreement with the authors on" in summary

    got, manifest = rows(out)
    per_id = Counter(row["id"] for row in got)
    want = {**expected(str(d / "pubmed26n0001.xml.gz")), **expected(str(d / "pubmed26n0002.xml")),
            **expected(str(d / "more.jsonl"))}
    assert per_id == want and len({(x["id"], x["sentence_index"]) for x in got}) == len(got)  # each once
    assert {x["model"] for x in got} == {str(sentence_model)}
    j5 = [x for x in got if x["id"] == "j5"]
    assert [(x["heading"], x["heading_category"]) for x in j5] == [("RESULT(S)", "RESULTS"),
                                                                   ("CONCLUSION(S)", "CONCLUSIONS")]
    assert {x["source"] for x in got} == {"model"}  # --relabel: the model labels everything
    report = json.loads((out / "agreement.json").read_text())
    assert report["sentences"] == sum(1 for x in got if x["heading_category"]) > 20
    assert sum(map(sum, report["confusion"]["matrix"])) == report["sentences"] and 0 <= report["accuracy"] <= 1
    assert manifest["inputs"][str(d / "truncated.xml.gz")]["done"] is False

    # without --relabel, the authors' sections keep the authors' labels, into a folder of its own
    out2 = tmp_path / "authors"
    run([*LABEL, str(d / "pubmed26n0001.xml.gz"), "--model", str(sentence_model), "--out", str(out2)], ROOT, ENV)
    got2, _ = rows(out2)
    authored = [x for x in got2 if x["heading_category"]]
    assert authored and all(x["source"] == "author" and x["label"] == x["heading_category"] for x in authored)
    assert all(x["source"] == "model" for x in got2 if not x["heading_category"])
    # a rerun with the same model skips what is done; a relabel rerun into the authors' folder is refused
    again = run([*LABEL, str(d / "pubmed26n0001.xml.gz"), "--model", str(sentence_model), "--out", str(out2)],
                ROOT, ENV)
    assert "1 inputs already done" in again.stderr and rows(out2)[0] == got2
    r = run([*LABEL, str(d / "pubmed26n0001.xml.gz"), "--model", str(sentence_model), "--out", str(out2),
             "--relabel"], ROOT, ENV, check=False)
    assert r.returncode == 2 and "resume with the same, or give a new --out" in r.stderr


def test_another_model_never_writes_into_the_folder(literature, sentence_model, tiny_bert, tmp_path):
    d, _ = literature
    out = tmp_path / "labelled"
    out.mkdir()
    (out / "manifest.json").write_text(json.dumps({"model": {"uri": "models:/pubmed-rct/1", "version": "1",
                                                             "sha256": "0" * 64}, "chunk": 1000, "inputs": {}}))
    r = run([*LABEL, str(d / "pubmed26n0002.xml"), "--model", str(sentence_model), "--out", str(out)], ROOT, ENV,
            check=False)
    assert r.returncode == 2 and "holds labels by another model (models:/pubmed-rct/1, version 1)" in r.stderr
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json"]


def test_killed_mid_run_and_started_again_every_sentence_is_there_once(literature, sentence_model, tmp_path):
    d, _ = literature
    src = tmp_path / "big.xml"
    write_xml(src, FIXTURE, 120, structured=0.4, seed=3)
    out = tmp_path / "labelled"
    cmd = [*LABEL, str(src), "--model", str(sentence_model), "--out", str(out), "--chunk", "10", "--batch", "5",
           "--workers", "1"]
    scratch, conf = tmp_path / "tmp", tmp_path / "conf"  # the machine's temp space, as the job sees it (TMPDIR)
    scratch.mkdir()
    conf.mkdir()  # each unit 1 s longer (tests/slow_units.py): the kill comes long before the job could end
    (conf / "spark-defaults.conf").write_text("spark.python.daemon.module slow_units\n")
    env = {**os.environ, "PATH": f"{VENV_BIN}:{os.environ['PATH']}", **ENV, "TMPDIR": str(scratch),
           "SPARK_CONF_DIR": str(conf), "SLOW_UNITS_DIR": str(tmp_path), "SLOW_UNITS_S": "1",
           "PYTHONPATH": f"{ROOT}:{ROOT / 'tests'}"}
    job = subprocess.Popen(cmd, cwd=ROOT, env=env, start_new_session=True, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    def parts_listed():  # the manifest is written (atomically) after each part, so a part may be on disk unlisted
        with contextlib.suppress(FileNotFoundError, KeyError):
            return len(json.loads((out / "manifest.json").read_text())["inputs"][str(src)]["parts"])
        return 0
    deadline = time.time() + 240
    while time.time() < deadline and parts_listed() < 3:
        time.sleep(0.2)
    # #28 B15: a second job on the same --out (other inputs) is refused while the first runs, naming it
    second = run([*LABEL, str(d / "pubmed26n0002.xml"), "--model", str(sentence_model), "--out", str(out),
                  "--chunk", "10"], ROOT, {**ENV, "TMPDIR": str(scratch)}, check=False)
    assert second.returncode == 2 and f"a label job on {out} is already running (pid {job.pid}" in second.stderr
    os.killpg(job.pid, signal.SIGKILL)  # the job and its Spark JVM, mid-part
    job.wait()
    assert 3 <= parts_listed() < 12
    r = run(cmd, ROOT, {**ENV, "TMPDIR": str(scratch)})
    # #28 B18: each kill left a pubmed-rct-spark.* folder (up to 167 MB) in the temp space; now Spark's scratch
    # space is OUT/.spark, emptied by the next job and removed at its end
    assert not (out / ".spark").exists()
    assert [p.name for p in scratch.iterdir() if p.name.startswith(("pubmed-rct", "spark", "blockmgr"))] == []
    assert sum(p.stat().st_size for p in scratch.rglob("*") if p.is_file()) < 2 ** 20  # (torch's own notes: bytes)
    got, manifest = rows(out)
    assert manifest["inputs"][str(src)]["done"] and len(manifest["inputs"][str(src)]["parts"]) == 12
    want = expected(str(src))
    assert Counter(x["id"] for x in got) == want
    assert len({(x["id"], x["sentence_index"]) for x in got}) == len(got)
    assert f"label: {len(want)} abstracts, {sum(want.values())} sentences" in r.stderr.strip().splitlines()[-1]


def test_inputs_on_s3_with_the_dvc_remotes_endpoint_and_credentials(literature, sentence_model, s3_endpoint,
                                                                   tmp_path):
    d, _ = literature
    project = tmp_path / "project"
    fs = s3_project(project, s3_endpoint)
    fs.put(str(d / "pubmed26n0002.xml"), "pubmed-rct/baseline/pubmed26n0002.xml")
    out = project / "labelled"
    run([*LABEL, "s3://pubmed-rct/baseline/", "--model", str(sentence_model), "--out", str(out)], project, ENV)
    got, _ = rows(out)
    assert Counter(x["id"] for x in got) == expected(str(d / "pubmed26n0002.xml"))
    assert {x["input"] for x in got} == {"s3://pubmed-rct/baseline/pubmed26n0002.xml"}
    r = run([*LABEL, "s3://pubmed-rct/nothing-here/", "--model", str(sentence_model), "--out",
             str(project / "x")], project, ENV, check=False)
    assert r.returncode == 2 and "s3://pubmed-rct/nothing-here/: no input found" in r.stderr
    (project / ".dvc" / "config.local").write_text((project / ".dvc" / "config.local").read_text().replace(
        services.S3_KEYS[1], "wrong-secret-key-99"))
    r = run([*LABEL, "s3://pubmed-rct/baseline/", "--model", str(sentence_model), "--out", str(project / "y")],
            project, ENV, check=False)
    assert r.returncode == 2 and "s3://pubmed-rct/baseline/: cannot be listed" in r.stderr
    assert "Traceback" not in r.stderr


def test_the_logged_model_works_with_mlflows_spark_udf(sentence_model, tmp_path, monkeypatch):
    """#23 item 4: `mlflow.pyfunc.spark_udf` over the logged pyfunc failed with OUTPUT_EXCEEDS_INPUT_ROWS (one
    row per sentence). With params output=abstracts it gives one struct of arrays per input row."""
    import mlflow
    from pyspark.sql import SparkSession
    from pubmed_rct.inference import pyfunc
    from conftest import ABSTRACT, ROLES
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlruns.db'}")
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlruns.db'}")
    exp = mlflow.MlflowClient().create_experiment("udf", artifact_location=(tmp_path / "artifacts").as_uri())
    run_id = mlflow.MlflowClient().create_run(exp).info.run_id
    uri = pyfunc.log_model(run_id, sentence_model)
    spark = (SparkSession.builder.master("local[1]").appName("udf-test").config("spark.ui.enabled", "false")
             .getOrCreate())
    try:
        df = spark.createDataFrame([(ABSTRACT,), ("  ",), ("RESULT(S): Pain fell by 30 %.",)], "text string")
        out = df.withColumn("roles", pyfunc.spark_udf(spark, uri)("text")).collect()
        same = df.withColumn("roles", mlflow.pyfunc.spark_udf(
            spark, uri, env_manager="local", params={"output": "abstracts"},
            result_type=pyfunc.SPARK_RESULT_TYPE)("text")).collect()
    finally:
        spark.stop()
    assert len(out) == 3 and [r["roles"] for r in out] == [r["roles"] for r in same]
    first, empty, structured = (r["roles"] for r in out)
    assert first["labels"] == ROLES and len(first["sentences"]) == 5 and first["error"] == ""
    assert first["headings"] == [""] * 5 and first["sources"] == ["model"] * 5
    assert empty["sentences"] == [] and "empty" in empty["error"]
    assert structured["headings"] == ["RESULT(S)"] and structured["sources"] == ["author"]
    assert structured["labels"] == ["RESULTS"]


def test_the_same_command_runs_on_a_cluster_of_two_workers(literature, sentence_model, tmp_path):
    """#23 item 4: `--address` runs the job on a running Spark cluster with no change of code (a standalone
    master and two worker processes of one core each)."""
    d, _ = literature
    out = tmp_path / "labelled"
    with services.spark_cluster(tmp_path / "cluster", workers=2) as url:
        r = run([*LABEL, str(d / "pubmed26n0002.xml"), "--model", str(sentence_model), "--out", str(out),
                 "--address", url, "--workers", "2", "--batch", "4"], ROOT, {**ENV, "SPARK_LOCAL_IP": "127.0.0.1"})
        executors = list((tmp_path / "cluster").glob("worker*/work/app-*/*/stderr"))
    got, _ = rows(out)
    assert Counter(x["id"] for x in got) == expected(str(d / "pubmed26n0002.xml"))
    assert len({p.relative_to(tmp_path / "cluster").parts[0] for p in executors}) == 2  # both workers ran one
    assert "label: 12 abstracts" in r.stderr.strip().splitlines()[-1]


def test_without_java_the_job_says_what_to_install(literature, sentence_model, tmp_path):
    d, _ = literature
    r = run([*LABEL, str(d / "pubmed26n0002.xml"), "--model", str(sentence_model), "--out", str(tmp_path / "o")],
            ROOT, {**ENV, "JAVA_HOME": str(tmp_path / "no-java")}, check=False)
    assert r.returncode == 2 and "Spark could not start" in r.stderr and "openjdk-17-jre-headless" in r.stderr
    assert "Traceback" not in r.stderr and not (tmp_path / "o").exists()


# #28: nothing lost, each PMID once in its latest version. Files written citation by citation, as NLM's are.
def xml_file(path, records, medline_set=False, broken_after=None):
    """PubMed XML of `records`: (pmid, abstract index into the fixture) citations, (pmid, None) without abstract,
    ("delete", [pmids]); with `broken_after` N, a citation that is not well formed follows the N-th."""
    import random
    from make_pubmed_xml import HEADER, MEDLINE_HEADER, abstracts, article, medline
    pool, rng, out = abstracts(FIXTURE), random.Random(0), []
    for i, (pmid, which) in enumerate(records):
        if pmid == "delete":
            out.append("<DeleteCitation>" + "".join(f'<PMID Version="1">{p}</PMID>' for p in which) +
                       "</DeleteCitation>\n")
            continue
        out.append((medline if medline_set else article)(pmid, None if which is None else pool[which % len(pool)],
                                                          i % 2 == 0, rng))
        if broken_after == i + 1:
            out.append(f"<PubmedArticle><MedlineCitation><PMID>{pmid}9</PMID></PubmedArticle>\n")
    text = (MEDLINE_HEADER if medline_set else HEADER) + "".join(out) + \
        ("</MedlineCitationSet>\n" if medline_set else "</PubmedArticleSet>\n")
    data = text.encode()
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)
    return data


def latest_versions(files) -> dict[str, int]:
    """The oracle: sentences per PMID of each one's latest version over `files` in order (NLM's rule)."""
    latest = {}
    for f in files:
        with contextlib.suppress(ValueError):  # a file's fault: the records before it count
            for r in reading.read(str(f), 0, 10 ** 9):
                for pmid in r.deleted or []:
                    latest[pmid] = None
                if r.deleted is None:
                    latest[r.id] = None if r.skipped else len(split_record({"text": None, "sections": r.sections}))
    return {pmid: n for pmid, n in latest.items() if n}


def test_faults_keep_what_came_before_and_each_pmid_is_there_once_in_its_latest_version(sentence_model, tmp_path):
    """#28 rows B1, B2 (citations before a fault were lost), B5 (a PMID twice in a file and again in another: 3x
    its rows), B6 (a deleted PMID kept its rows), B14 (one file named three ways: 3x), B13 (--out inside the input
    folder read its own parts on the rerun), MEDLINE (a 2016 MedlineCitationSet read as empty, exit 0), UX
    (Spark's console bar inside the job's own)."""
    lit = tmp_path / "lit"
    lit.mkdir()
    xml_file(lit / "pubmed26n0001.xml", [(101, 0), (102, 1), (103, 2), (104, 3), (105, 4), (106, None), (105, 5),
                                         (107, 6)])
    xml_file(lit / "pubmed26n0002.xml", [(101, 7), (108, 8), ("delete", [103, 104]), (105, 9)])
    whole = xml_file(lit / "cut.xml.gz", [(200 + i, i) for i in range(40)])
    (lit / "cut.xml.gz").write_bytes(gzip.compress(whole)[: len(gzip.compress(whole)) * 6 // 10])
    xml_file(lit / "broken.xml", [(300 + i, i) for i in range(14)], broken_after=10)
    xml_file(lit / "medline16n0001.xml", [(401, 10), (402, 11), (403, None), (404, 12), ("delete", [999])],
             medline_set=True)
    (lit / "empty.xml").write_text('<?xml version="1.0"?>\n<PubmedBookArticleSet>\n</PubmedBookArticleSet>\n')
    cmd = [*LABEL, "lit", "lit/pubmed26n0001.xml", "./lit/../lit/pubmed26n0001.xml",
           str(lit / "pubmed26n0001.xml"), "--model", str(sentence_model), "--out", "lit/labelled", "--chunk", "3"]
    r = run(cmd, tmp_path, ENV, check=False)
    assert r.returncode == 1 and "Traceback" not in r.stderr and "[Stage" not in r.stderr, r.stderr[-3000:]
    readable = sum(1 for _ in _citations(lit / "cut.xml.gz"))
    import zlib
    seen = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress((lit / "cut.xml.gz").read_bytes()).count(
        b"<PubmedArticle>")  # begun before the cut: the readable ones and the one cut in two
    assert 0 < readable < seen <= 40
    assert f"{lit / 'cut.xml.gz'}: the compressed file breaks off or is damaged after citation {readable}" in r.stderr
    assert f"{lit / 'broken.xml'}: not well-formed XML at line" in r.stderr and "(after citation 10)" in r.stderr
    assert (f"{lit / 'empty.xml'}: no PubMed or MEDLINE record under its root element <PubmedBookArticleSet>"
            in r.stderr)
    summary = r.stderr.strip().splitlines()[-1]
    assert "bad files 3 {'bad_xml': 3}" in summary and "citations lost to faults" in summary
    assert f"citations lost to faults {seen - readable + 5};" in summary  # the broken one and the 4 after it
    got, manifest = rows(tmp_path / "lit" / "labelled")
    order = ["broken.xml", "cut.xml.gz", "empty.xml", "medline16n0001.xml", "pubmed26n0001.xml", "pubmed26n0002.xml"]
    assert list(manifest["inputs"]) == [str(lit / name) for name in order]  # each once, never the output's own
    want = latest_versions([lit / name for name in order])
    per_id = Counter(x["id"] for x in got)
    assert per_id == want, (per_id, want)
    assert len({(x["id"], x["sentence_index"]) for x in got}) == len(got)  # each sentence once
    assert {"103", "104"}.isdisjoint(per_id) and {"401", "402", "404", "300", "309"} <= set(per_id)
    assert not set(per_id) & {str(300 + i) for i in range(10, 14)}  # after the broken citation: lost, counted
    assert manifest["inputs"][str(lit / "pubmed26n0002.xml")]["deleted_pmids"] == ["103", "104"]
    assert sum(e["superseded"] for e in manifest["inputs"].values()) >= 3  # 105 twice, 101 once
    assert manifest["inputs"][str(lit / "cut.xml.gz")]["done"] is False

    again = run(cmd, tmp_path, ENV, check=False)  # the same command: nothing new, the output never an input
    assert again.returncode == 1 and "3 inputs already done" in again.stderr.strip().splitlines()[-1]
    got2, manifest2 = rows(tmp_path / "lit" / "labelled")
    assert list(manifest2["inputs"]) == list(manifest["inputs"]) and Counter(x["id"] for x in got2) == want


def _citations(path):
    with contextlib.suppress(ValueError):
        for r in reading.read(str(path), 0, 10 ** 9):
            if r.deleted is None:
                yield r


def test_a_model_or_manifest_that_cannot_be_used_is_one_line_before_spark_starts(literature, sentence_model,
                                                                                 tmp_path):
    """#28 rows B22, B23 (an empty folder or a file as --model started Spark, gave three tracebacks and left a
    manifest that refused the right model afterwards), B12 (a foreign or cut manifest.json: KeyError, TypeError
    or a JSON error without the file), B21 (the same weights plus an ONNX file were taken for the same model: the
    resumed parts ran int8)."""
    import shutil
    from pubmed_rct.literature.manifest import model_identity
    d, _ = literature
    src = str(d / "pubmed26n0002.xml")
    (tmp_path / "empty").mkdir()
    (tmp_path / "a-file").write_text("not a model")
    for model in (tmp_path / "empty", tmp_path / "a-file"):
        out = tmp_path / f"out-{model.name}"
        r = run([*LABEL, src, "--model", str(model), "--out", str(out)], ROOT, ENV, check=False)
        assert r.returncode == 2 and r.stderr.startswith(f"error: --model {model}: no trained model here"), r.stderr
        assert len(r.stderr.strip().splitlines()) == 1 and not out.exists()
    for name, text, why in (("foreign", '{"name": "something else"}', "is not a label job's manifest (no model"),
                            ("cut", '{"model": {"uri": "models:/pubmed-rct/1", "sha', "cannot be read"),
                            ("list", "[1, 2]", "is not a label job's manifest (not a JSON object)")):
        out = tmp_path / name
        out.mkdir()
        (out / "manifest.json").write_text(text)
        r = run([*LABEL, src, "--model", str(sentence_model), "--out", str(out)], ROOT, ENV, check=False)
        assert r.returncode == 2 and f"error: {out / 'manifest.json'} {why}" in r.stderr, r.stderr
        assert len(r.stderr.strip().splitlines()) == 1 and sorted(p.name for p in out.iterdir()) == ["manifest.json"]
    exported = tmp_path / "exported"
    shutil.copytree(sentence_model, exported, ignore=shutil.ignore_patterns("*.onnx"))
    out = tmp_path / "labelled"
    out.mkdir()
    before = model_identity(str(exported), exported, "auto")
    (out / "manifest.json").write_text(json.dumps({"model": before, "chunk": 200, "relabel": False, "inputs": {}}))
    shutil.copy2(next(sentence_model.glob("model.*.onnx")), exported)  # `export-onnx` run on the folder
    r = run([*LABEL, src, "--model", str(exported), "--out", str(out)], ROOT, ENV, check=False)
    assert r.returncode == 2 and f"--out {out} holds labels by another model ({exported}" in r.stderr, r.stderr
    r = run([*LABEL, src, "--model", str(sentence_model), "--backend", "torch", "--out", str(out)], ROOT, ENV,
            check=False)
    assert r.returncode == 2 and "holds labels by another model" in r.stderr  # the backend is part of it too


def test_a_full_disk_is_one_line_naming_the_folder_and_the_job_goes_on_once_there_is_space(literature,
                                                                                         sentence_model, tmp_path):
    """#28 row B19: a full disk under --out was an ENOSPC traceback. Here --out is a tmpfs (own mount
    namespace) too small for the job; then it is made larger and the same command finishes the job."""
    d, _ = literature
    src = d / "pubmed26n0001.xml.gz"
    disk = tmp_path / "disk"
    disk.mkdir()
    cmd = " ".join(map(str, [*LABEL, src, "--model", sentence_model, "--out", disk / "out", "--chunk", "3",
                             "--workers", "1"]))
    script = f"""set -e
    mount -t tmpfs -o size=1000k tmpfs {disk}
    set +e
    {cmd} 2> {tmp_path}/full.err; echo $? > {tmp_path}/full.status
    cp {disk}/out/manifest.json {tmp_path}/manifest-when-full.json
    ls {disk}/out/sentences > {tmp_path}/parts-when-full
    mount -o remount,size=20m {disk}
    {cmd} 2> {tmp_path}/again.err; echo $? > {tmp_path}/again.status
    cp -a {disk}/out {tmp_path}/out"""
    run(["unshare", "--map-root-user", "--mount", "sh", "-c", script], ROOT, ENV)
    err = (tmp_path / "full.err").read_text()
    assert (tmp_path / "full.status").read_text().strip() == "2", err[-3000:]
    assert "Traceback" not in err and " ERROR " not in err, err[-3000:]  # Spark's own log is off by default
    assert err.strip().splitlines()[-1].startswith(f"error: no space left on the device under {disk / 'out'}")
    listed = {p for e in json.loads((tmp_path / "manifest-when-full.json").read_text())["inputs"].values()
              for p in e["parts"]}
    assert {f"sentences/{p}" for p in (tmp_path / "parts-when-full").read_text().split()} >= listed  # consistent
    assert (tmp_path / "again.status").read_text().strip() == "0", (tmp_path / "again.err").read_text()[-3000:]
    got, _ = rows(tmp_path / "out")
    assert Counter(x["id"] for x in got) == expected(str(src))


def s3_project(project, endpoint):
    """A project whose DVC remote is the test's S3 server (credentials in .dvc/config.local, as users keep them)."""
    (project / ".dvc").mkdir(parents=True)
    (project / ".dvc" / "config").write_text("[core]\n    remote = storage\n['remote \"storage\"']\n"
                                             "    url = s3://pubmed-rct/dvc-cache\n")
    (project / ".dvc" / "config.local").write_text(
        f"['remote \"storage\"']\n    endpointurl = {endpoint}\n    access_key_id = {services.S3_KEYS[0]}\n"
        f"    secret_access_key = {services.S3_KEYS[1]}\n")
    import s3fs
    return s3fs.S3FileSystem(key=services.S3_KEYS[0], secret=services.S3_KEYS[1],
                             client_kwargs={"endpoint_url": endpoint}, skip_instance_cache=True,
                             use_listings_cache=False)


def test_a_cluster_reads_from_and_writes_to_s3_and_a_key_gone_after_listing_is_one_bad_file(
        literature, sentence_model, s3_endpoint, tmp_path):
    """#29: a standalone master and two worker processes, inputs and --out on S3 (rclone): the executors read,
    label and write the parts there, the driver records them in the manifest there. #28 row B25: an S3 key
    deleted after listing stopped the job ("NoSuchKey ... Unknown"); now it is named and counted, the rest
    goes on."""
    import pyarrow.parquet as pq_
    d, _ = literature
    project = tmp_path / "project"
    fs = s3_project(project, s3_endpoint)
    for name in ("pubmed26n0001.xml.gz", "pubmed26n0002.xml", "more.jsonl"):
        fs.put(str(d / name), f"pubmed-rct/cluster-in/{name}")
    gone = "s3://pubmed-rct/cluster-in/more.jsonl"
    with services.spark_cluster(tmp_path / "cluster", workers=2) as url:
        r = run([sys.executable, str(ROOT / "tests/run_with.py"), f"delete-after-listing={gone}", "-m", "pubmed_rct",
                 "label", "s3://pubmed-rct/cluster-in/", "--model", str(sentence_model), "--out",
                 "s3://pubmed-rct/cluster-out", "--address", url, "--workers", "2", "--chunk", "7"],
                project, {**ENV, "SPARK_LOCAL_IP": "127.0.0.1"}, check=False)
        executors = list((tmp_path / "cluster").glob("worker*/work/app-*/*/stderr"))
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr[-3000:]
    assert f"error: {gone}: cannot be read" in r.stderr and "bad files 1 {'unreadable': 1}" in r.stderr
    manifest = json.loads(fs.cat("pubmed-rct/cluster-out/manifest.json"))
    listed = [p for e in manifest["inputs"].values() for p in e["parts"]]
    assert sorted(f"sentences/{p.rsplit('/', 1)[1]}" for p in fs.find("pubmed-rct/cluster-out/sentences")) == \
        sorted(listed)
    got = [row for p in listed for row in pq_.read_table(fs.open(f"pubmed-rct/cluster-out/{p}")).to_pylist()]
    want = {**expected(str(d / "pubmed26n0001.xml.gz")), **expected(str(d / "pubmed26n0002.xml"))}
    assert Counter(x["id"] for x in got) == want and len({(x["id"], x["sentence_index"]) for x in got}) == len(got)
    assert {x["input"] for x in got} == {f"s3://pubmed-rct/cluster-in/{n}" for n in ("pubmed26n0001.xml.gz",
                                                                                    "pubmed26n0002.xml")}
    assert [e["done"] for e in manifest["inputs"].values()] == [False, True, True]  # the gone one, then the two
    assert len({p.relative_to(tmp_path / "cluster").parts[0] for p in executors}) == 2  # both workers ran tasks


def test_the_workers_run_the_drivers_python_and_a_python_without_the_packages_is_one_line(
        literature, sentence_model, tmp_path):
    """#28 row PY: run as .venv/bin/python with the venv not on PATH (cron, systemd), Spark's workers started the
    python3 on PATH: 'No module named torch' tracebacks and "0 abstracts". And a worker Python without the
    project's packages (PYSPARK_PYTHON) is one line naming what is missing."""
    d, _ = literature
    src = d / "pubmed26n0002.xml"
    bare = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "MLFLOW_TRACKING_URI": ""}  # python3: no packages
    r = subprocess.run([sys.executable, "-m", "pubmed_rct", "label", str(src), "--model", str(sentence_model),
                        "--out", str(tmp_path / "a"), "--workers", "1"], cwd=tmp_path, env=bare,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    assert Counter(x["id"] for x in rows(tmp_path / "a")[0]) == expected(str(src))
    r = subprocess.run([sys.executable, "-m", "pubmed_rct", "label", str(src), "--model", str(sentence_model),
                        "--out", str(tmp_path / "b"), "--workers", "1"], cwd=tmp_path,
                       env={**bare, "PYSPARK_PYTHON": "/usr/bin/python3"}, capture_output=True, text=True)
    assert r.returncode == 2, r.stderr[-3000:]
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("error: the Spark workers' Python lacks the module 'lxml'") and "PYSPARK_PYTHON" in last


def test_a_python_worker_killed_inside_a_unit_is_retried_and_every_sentence_is_there_once(literature,
                                                                                        sentence_model, tmp_path):
    """#29: Spark retries the task of a Python worker killed mid-unit (SIGKILL); the retried unit writes the same
    part again, so every sentence is there once. The kill comes while the worker is inside a unit: a Spark
    plug-in (tests/slow_units.py) announces each unit as it starts."""
    d, _ = literature
    src = d / "pubmed26n0001.xml.gz"
    conf, started = tmp_path / "conf", tmp_path / "started"
    conf.mkdir()
    started.mkdir()
    (conf / "spark-defaults.conf").write_text("spark.python.daemon.module slow_units\n")
    env = {**os.environ, "PATH": f"{VENV_BIN}:{os.environ['PATH']}", **ENV, "SPARK_CONF_DIR": str(conf),
           "SLOW_UNITS_DIR": str(started), "SLOW_UNITS_S": "2", "PYTHONPATH": f"{ROOT}:{ROOT / 'tests'}"}
    out = tmp_path / "labelled"
    job = subprocess.Popen([*LABEL, str(src), "--model", str(sentence_model), "--out", str(out), "--chunk", "5",
                            "--workers", "2"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                           text=True)
    deadline = time.time() + 240
    while time.time() < deadline and len(list(started.iterdir())) < 3:  # two units done or under way, a third begun
        time.sleep(0.1)
    victim = sorted(started.iterdir(), key=lambda p: p.stat().st_mtime)[-1]
    pid, unit = map(int, victim.name.split("-")[1:])
    os.kill(pid, signal.SIGKILL)  # inside its unit: it sleeps there for 2 s before labelling
    _, err = job.communicate(timeout=600)
    assert job.returncode == 0 and "Traceback" not in err, err[-3000:]
    again = [p for p in started.iterdir() if p.name.endswith(f"-{unit}") and int(p.name.split("-")[1]) != pid]
    assert again, "the killed unit was not run again"
    got, manifest = rows(out)
    assert Counter(x["id"] for x in got) == expected(str(src)) and len({(x["id"], x["sentence_index"])
                                                                        for x in got}) == len(got)
