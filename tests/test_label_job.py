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
from pubmed_rct import sources
from pubmed_rct.engine import split_record
from pubmed_rct.pubmed_xml import Counts

LABEL = [sys.executable, "-m", "pubmed_rct", "label"]
FIXTURE = ROOT / "tests" / "fixtures" / "rct" / "test.txt"
ENV = {"PYTHONPATH": str(ROOT), "MLFLOW_TRACKING_URI": ""}


def expected(uri: str) -> dict[str, int]:
    """Sentences per id in an input, as the job splits them (no model needed)."""
    out = {}
    for r in sources.records(uri, Counts()):
        if not r.error:
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
    env = {**os.environ, "PATH": f"{VENV_BIN}:{os.environ['PATH']}", **ENV}
    job = subprocess.Popen(cmd, cwd=ROOT, env=env, start_new_session=True, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    def parts_listed():  # the manifest is written (atomically) after each part, so a part may be on disk unlisted
        with contextlib.suppress(FileNotFoundError, KeyError):
            return len(json.loads((out / "manifest.json").read_text())["inputs"][str(src)]["parts"])
        return 0
    deadline = time.time() + 240
    while time.time() < deadline and parts_listed() < 3:
        time.sleep(0.2)
    os.killpg(job.pid, signal.SIGKILL)  # the job and its Spark JVM, mid-part
    job.wait()
    assert 3 <= parts_listed() < 12
    r = run(cmd, ROOT, ENV)
    got, manifest = rows(out)
    assert manifest["inputs"][str(src)]["done"] and len(manifest["inputs"][str(src)]["parts"]) == 12
    want = expected(str(src))
    assert Counter(x["id"] for x in got) == want
    assert len({(x["id"], x["sentence_index"]) for x in got}) == len(got)
    assert f"label: {len(want)} abstracts, {sum(want.values())} sentences" in r.stderr.strip().splitlines()[-1]


def test_inputs_on_s3_with_the_dvc_remotes_endpoint_and_credentials(literature, sentence_model, s3_endpoint,
                                                                   tmp_path):
    import s3fs
    d, _ = literature
    fs = s3fs.S3FileSystem(key=services.S3_KEYS[0], secret=services.S3_KEYS[1],
                           client_kwargs={"endpoint_url": s3_endpoint})
    fs.put(str(d / "pubmed26n0002.xml"), "pubmed-rct/baseline/pubmed26n0002.xml")
    project = tmp_path / "project"
    (project / ".dvc").mkdir(parents=True)
    (project / ".dvc" / "config").write_text("[core]\n    remote = storage\n['remote \"storage\"']\n"
                                             "    url = s3://pubmed-rct/dvc-cache\n")
    (project / ".dvc" / "config.local").write_text(
        f"['remote \"storage\"']\n    endpointurl = {s3_endpoint}\n    access_key_id = {services.S3_KEYS[0]}\n"
        f"    secret_access_key = {services.S3_KEYS[1]}\n")
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
    from pubmed_rct import pyfunc
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
