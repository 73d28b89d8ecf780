"""`python -m pubmed_rct index` and `search`, the API and the search page (#30): a real label job's output
indexed incrementally, a build killed mid-way, searches by words, role, probability and source, hostile
queries against the real server and in Chromium."""
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from conftest import ROOT, VENV_BIN, run
from make_pubmed_xml import write as write_xml

CLI = [sys.executable, "-m", "pubmed_rct"]
FIXTURE = ROOT / "tests" / "fixtures" / "rct" / "test.txt"
ENV = {"PYTHONPATH": str(ROOT), "MLFLOW_TRACKING_URI": ""}


def sentences_of(out: Path) -> list[dict]:
    manifest = json.loads((out / "manifest.json").read_text())
    parts = [out / p for e in manifest["inputs"].values() for p in e["parts"]]
    return pq.read_table(parts).to_pylist()


def search(index: Path, *args) -> dict:
    return json.loads(run([*CLI, "search", *args, "--index", str(index), "--format", "json"], ROOT, ENV).stdout)


@pytest.fixture(scope="module")
def indexed(tmp_path_factory, sentence_model):
    """A literature labelled by the real label job, indexed; then labelled further and indexed again."""
    d = tmp_path_factory.mktemp("search")
    (d / "pubmed").mkdir()
    write_xml(d / "pubmed" / "pubmed26n0001.xml.gz", FIXTURE, 24, structured=0.5, seed=1)
    out, index = d / "labelled", d / "index"
    label = [*CLI, "label", str(d / "pubmed"), "--model", str(sentence_model), "--out", str(out), "--workers", "1"]
    run(label, ROOT, ENV)
    first = run([*CLI, "index", str(out), "--index", str(index)], ROOT, ENV)
    write_xml(d / "pubmed" / "pubmed26n0002.xml.gz", FIXTURE, 16, structured=0.5, first_pmid=40_000_000, seed=2)
    run(label, ROOT, ENV)  # the same --out: the second file is added
    second = run([*CLI, "index", str(out), "--index", str(index)], ROOT, ENV)
    return out, index, first.stderr, second.stderr


def test_an_index_grows_with_its_literature_and_holds_every_sentence_once(indexed):
    out, index, first, second = indexed
    rows = sentences_of(out)
    registry = json.loads((index / "index.json").read_text())
    assert registry["sentences"] == len(rows) and registry["source"] == str(out)
    assert registry["model"] == json.loads((out / "manifest.json").read_text())["model"]
    assert first.strip().splitlines()[-1].startswith("index: ")
    parts_first = int(first.split(" parts indexed now")[0].rsplit("(", 1)[1].replace(",", ""))
    summary = second.strip().splitlines()[-1]
    assert f"index: {len(rows):,} sentences from {len(registry['parts'])} parts" in summary
    assert f"{parts_first} already in" in summary  # only the new parts were read
    again = run([*CLI, "index", str(out), "--index", str(index)], ROOT, ENV).stderr.strip().splitlines()[-1]
    assert "0 parts indexed now" in again and f"index: {len(rows):,} sentences" in again
    everything = search(index, "--role", "RESULTS", "--limit", "200")
    want = sum(1 for r in rows if r["label"] == "RESULTS")
    assert everything["count"] == want and len({(h["id"], h["sentence_index"]) for h in everything["hits"]}) == \
        min(want, 200)


def test_search_ranks_marks_filters_and_links_back(indexed):
    out, index, _, _ = indexed
    rows = sentences_of(out)
    found = search(index, "patients", "--limit", "50")
    want = [r for r in rows if "patient" in r["text"].lower()]
    assert found["count"] == len(want) > 0
    hit = found["hits"][0]
    assert hit["link"] == f"https://pubmed.ncbi.nlm.nih.gov/{hit['id']}/" and 0 < hit["probability"] <= 1
    assert all(hit["text"][a:b].lower().startswith("patient") for a, b in hit["marks"]) and hit["marks"]
    assert "<mark>" in hit["marked_html"]
    scores = [h["score"] for h in found["hits"]]
    assert scores == sorted(scores, reverse=True)  # BM25, best first
    results = search(index, "patients", "--role", "results", "--role", "methods", "--limit", "200")
    assert {h["label"] for h in results["hits"]} <= {"RESULTS", "METHODS"} and results["count"] == sum(
        1 for r in want if r["label"] in ("RESULTS", "METHODS"))
    sure = search(index, "--min-probability", "0.9", "--source", "model", "--limit", "200")
    assert sure["count"] == sum(1 for r in rows if r["probability"] >= 0.9 and r["source"] == "model")
    authors = search(index, "--source", "author", "--limit", "5")
    assert authors["count"] == sum(1 for r in rows if r["source"] == "author") > 0
    phrase = search(index, '"randomly assigned"')
    assert phrase["count"] == sum(1 for r in rows if "randomly assigned" in r["text"].lower())
    text = run([*CLI, "search", "patients", "--index", str(index), "--limit", "2"], ROOT, ENV).stdout
    assert text.count("https://pubmed.ncbi.nlm.nih.gov/") == 2 and "**patients**" in text.lower()
    table = run([*CLI, "search", "patients", "--index", str(index), "--limit", "3", "--format", "csv"], ROOT,
                ENV).stdout.splitlines()
    assert table[0] == "id,sentence_index,label,probability,source,heading,text,marked,link" and len(table) == 4


def test_an_abstract_comes_back_regrouped_by_role(indexed):
    out, index, _, _ = indexed
    rows = sentences_of(out)
    pmid = rows[0]["id"]
    mine = sorted((r for r in rows if r["id"] == pmid), key=lambda r: r["sentence_index"])
    body = json.loads(run([*CLI, "search", "--abstract", pmid, "--index", str(index), "--format", "json"], ROOT,
                          ENV).stdout)
    assert [s["sentence"] for s in body["sentences"]] == [r["text"] for r in mine]
    assert [s["label"] for sec in body["sections"] for s in sec["sentences"]] == [r["label"] for r in mine]
    text = run([*CLI, "search", "--abstract", pmid, "--index", str(index)], ROOT, ENV).stdout
    assert text.startswith(f"PMID {pmid}  https://pubmed.ncbi.nlm.nih.gov/{pmid}/") and mine[0]["text"] in text


@pytest.mark.parametrize("args, message", [
    (["x" * 1001], "the query has 1,001 characters; the limit is 1,000"),
    (["aspirin", "--role", "nonsense"], "role 'nonsense' is not in this index"),
    (["aspirin", "--min-probability", "1.5"], "min-probability 1.5 is not between 0 and 1"),
    ([""], "give words to search for"),
])
def test_a_search_that_cannot_be_done_is_one_line(indexed, args, message):
    _, index, _, _ = indexed
    r = run([*CLI, "search", *args, "--index", str(index)], ROOT, ENV, check=False)
    assert r.returncode == 2 and r.stderr.startswith(f"error: {message}") and len(r.stderr.strip().splitlines()) == 1


def test_another_models_labels_are_refused_and_a_killed_build_leaves_the_last_one(indexed, tmp_path):
    """#30: an index is never a mix of two models' labels; a build killed mid-way leaves the previous index
    searchable, and the next build finishes without a sentence twice."""
    out, index, _, _ = indexed
    import shutil
    relabelled, copy = tmp_path / "relabelled", tmp_path / "index"
    shutil.copytree(out, relabelled)
    run([*CLI, "index", str(relabelled), "--index", str(copy)], ROOT, ENV)
    manifest = json.loads((relabelled / "manifest.json").read_text())
    other = {**manifest["model"], "sha256": "1" * 64, "uri": "models:/other/2", "version": "2"}
    (relabelled / "manifest.json").write_text(json.dumps({**manifest, "model": other}))  # deleted, labelled anew
    r = run([*CLI, "index", str(relabelled), "--index", str(copy)], ROOT, ENV, check=False)
    assert r.returncode == 2 and f"--index {copy} holds labels by another model ({manifest['model']['uri']}" in r.stderr
    r = run([*CLI, "index", str(out), "--index", str(copy)], ROOT, ENV, check=False)
    assert r.returncode == 2 and f"--index {copy} indexes {relabelled}; give a new --index for {out}" in r.stderr

    big = tmp_path / "big"
    write_big_output(big, manifest["model"], parts=40)
    fresh = tmp_path / "fresh"
    run([*CLI, "index", str(big), "--index", str(fresh)], ROOT, ENV)
    before = search(fresh, "--role", "RESULTS", "--limit", "1")["count"]
    write_big_output(big, manifest["model"], parts=400)  # 360 more parts: a build of several seconds
    env = {**os.environ, "PATH": f"{VENV_BIN}:{os.environ['PATH']}", **ENV}
    build = subprocess.Popen([*CLI, "index", str(big), "--index", str(fresh)], cwd=ROOT, env=env,
                             stderr=subprocess.PIPE, text=True, start_new_session=True)
    seen = ""
    while "60/360" not in seen and build.poll() is None:
        seen += build.stderr.read(64)
    os.killpg(build.pid, signal.SIGKILL)
    build.wait()
    assert search(fresh, "--role", "RESULTS", "--limit", "1")["count"] == before  # the last index, whole
    assert len(json.loads((fresh / "index.json").read_text())["parts"]) == 40
    run([*CLI, "index", str(big), "--index", str(fresh)], ROOT, ENV)
    rows = pq.read_table(big / "sentences").to_pylist()
    assert search(fresh, "--role", "RESULTS", "--limit", "1")["count"] == sum(1 for r in rows if r["label"] == "RESULTS")
    assert json.loads((fresh / "index.json").read_text())["sentences"] == len(rows)


def write_big_output(out: Path, model: dict, parts: int) -> None:
    """A label job's output written directly (parts and manifest as the job writes them): for the index's own
    tests, where labelling 100,000 sentences would only cost time."""
    from pubmed_rct.io import write_json
    from pubmed_rct.literature import parts as part_files
    words = FIXTURE.read_text().split()
    roles = ["BACKGROUND", "OBJECTIVE", "METHODS", "RESULTS", "CONCLUSIONS"]
    names = []
    for k in range(parts):
        name = part_files.part_name(str(out / "in.xml"), k)
        names.append(name)
        if (out / name).is_file():
            continue
        rows = [{"id": str(10_000 + k * 50 + i // 5), "sentence_index": i % 5, "label": roles[i % 5],
                 "text": " ".join(words[(k * 997 + i * 31 + j) % len(words)] for j in range(12)),
                 "probability": 0.5 + (i % 50) / 100, "source": "model", "heading": None,
                 "heading_category": None, "input": str(out / "in.xml")} for i in range(250)]
        part_files.write(str(out), name, part_files.table(rows, model, {}))
    write_json(out / "manifest.json", {"model": model, "chunk": 50, "relabel": False,
                                       "inputs": {str(out / "in.xml"): {"order": 0, "parts": names, "done": True}}})


@pytest.fixture(scope="module")
def search_server(indexed, sentence_model, tmp_path_factory):
    """`python -m pubmed_rct serve --index DIR` on a free port: the page, the label API and the search API."""
    import services
    _, index, _, _ = indexed
    port = services.free_port()
    cmd = [*CLI, "serve", "--model", str(sentence_model), "--index", str(index), "--port", str(port)]
    with services.service(cmd, f"http://127.0.0.1:{port}/api/health", tmp_path_factory.mktemp("serve"),
                          {**ENV}, cwd=ROOT):
        yield f"http://127.0.0.1:{port}/"


def get(url: str) -> tuple[int, str, dict]:
    try:
        with urllib.request.urlopen(url, timeout=60) as r:
            return r.status, r.headers["Content-Type"], json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, e.headers["Content-Type"], json.loads(e.read())


HOSTILE = ["<script>alert(1)</script>", '"', '""', '"unterminated phrase', "aspirin AND OR NOT patients",
           "*", "pat*", "text:patients", "role:results", "(patients) [x] {y} ~2 ^3 -placebo +aspirin", "NEAR(a b)",
           "patients\x00\x01", "\u202epatients", "caf\u00e9 \U0001f600", "x" * 10_000, "'; DROP TABLE t; --"]


@pytest.mark.parametrize("query", HOSTILE)
def test_every_query_gets_a_200_or_a_json_400_never_a_500(search_server, query):
    status, kind, body = get(search_server + "api/search?" + urllib.parse.urlencode({"q": query}))
    assert kind == "application/json" and status in (200, 400), (status, body)
    if status == 200:
        assert isinstance(body["hits"], list) and all("<script" not in h["marked_html"] for h in body["hits"])
    else:
        assert body["error"].strip()
    lone = search_server + "api/search?q=patients%ED%A0%80randomised"  # a lone surrogate's UTF-8 bytes
    assert get(lone)[0] in (200, 400)


@pytest.mark.parametrize("query, status, message", [
    ("q=patients&role=%3Cscript%3E", 400, "role '<script>' is not in this index"),
    ("q=patients&min_probability=abc", 400, "min_probability 'abc' is not a number"),
    ("q=patients&min_probability=nan", 400, "min-probability nan is not between 0 and 1"),
    ("q=patients&limit=0", 400, "limit 0 is not between 1 and 200"),
    ("q=patients&limit=1e9", 400, "limit '1e9' is not a whole number"),
    ("q=patients&source=reviewer", 400, "source 'reviewer' is not author or model"),
])
def test_bad_filters_are_a_json_400_naming_them(search_server, query, status, message):
    got, _, body = get(search_server + "api/search?" + query)
    assert (got, body["error"]) == (status, body["error"]) and message in body["error"]


def test_the_api_searches_and_gives_whole_abstracts(search_server, indexed):
    out, _, _, _ = indexed
    rows = sentences_of(out)
    status, _, found = get(search_server + "api/search?q=patients&role=RESULTS&role=METHODS&limit=5")
    assert status == 200 and found["count"] == sum(1 for r in rows if "patient" in r["text"].lower() and
                                                   r["label"] in ("RESULTS", "METHODS"))
    pmid = found["hits"][0]["id"]
    status, _, abstract = get(search_server + f"api/abstract/{pmid}")
    assert status == 200 and [s["sentence"] for s in abstract["sentences"]] == [
        r["text"] for r in sorted((r for r in rows if r["id"] == pmid), key=lambda r: r["sentence_index"])]
    assert get(search_server + "api/abstract/99999999")[0] == 404
    assert get(search_server + "api/health")[2]["search"] is True


def test_the_search_page_in_chromium(search_server, tmp_path):
    """Query box, role checkboxes, probability slider, results with marked words; a click shows the whole
    abstract by role; hostile queries are shown as text or answered with an error, nothing injected."""
    from playwright.sync_api import sync_playwright
    from conftest import chromium
    with sync_playwright() as p:
        browser = chromium(p)
        page = browser.new_page()
        page.goto(search_server)
        page.wait_for_selector("#search-link:not([hidden])")
        page.click("#search-link")
        page.wait_for_selector("#roles input")
        page.fill("#q", "patients")
        page.check("#roles input[value=RESULTS]")
        page.fill("#minp", "0.3")
        page.click("#go")
        page.wait_for_selector(".hit")
        assert set(page.eval_on_selector_all(".hit", "els => els.map(e => e.dataset.label)")) == {"RESULTS"}
        marks = page.eval_on_selector_all(".hit mark", "els => els.map(e => e.textContent.toLowerCase())")
        assert marks and all(m.startswith("patient") for m in marks)
        page.click(".hit")
        page.wait_for_selector("#abstract .section")
        assert page.query_selector("#abstract .chosen") is not None
        assert page.eval_on_selector_all("#abstract .section", "els => els.map(e => e.dataset.label)")
        page.screenshot(path=str(tmp_path / "search.png"), full_page=True)
        page.uncheck("#roles input[value=RESULTS]")
        page.fill("#minp", "0")
        page.fill("#q", '<img src=x onerror="window.pwned=1"> patients "randomly')
        page.click("#go")
        page.wait_for_function("document.getElementById('status').textContent.length > 0 || "
                               "document.getElementById('error').textContent.length > 0")
        assert page.evaluate("window.pwned") is None and page.query_selector("img") is None
        page.fill("#q", "x" * 10_000)
        page.click("#go")
        page.wait_for_function("document.getElementById('error').textContent.length > 0")
        assert page.inner_text("#error").startswith("the query has 10,000 characters; the limit is 1,000")
        browser.close()
