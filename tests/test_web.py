"""The JSON API (Flask test client) and the page, driven in real headless Chromium."""
import threading

import pytest
from werkzeug.serving import make_server

from conftest import ABSTRACT, ROLES
from pubmed_rct.predict import Labeler
from pubmed_rct.sentences import MAX_CHARS
from pubmed_rct.web import create_app


@pytest.fixture(scope="module")
def app(sentence_model):
    return create_app(Labeler.load(sentence_model))


def test_api_labels_an_abstract(app):
    r = app.test_client().post("/api/label", json={"text": ABSTRACT})
    assert r.status_code == 200
    body = r.get_json()
    assert [s["label"] for s in body["sentences"]] == ROLES and body["context"] == "none"
    assert [s["label"] for s in body["sections"]] == ROLES


@pytest.mark.parametrize("kwargs, status, message", [
    ({"json": {"text": ""}}, 400, "empty"),
    ({"json": {"text": "  \n "}}, 400, "empty"),
    ({"json": {"nope": 1}}, 400, "string field 'text'"),
    ({"json": {"text": "x" * (MAX_CHARS + 1)}}, 413, "limit"),
    ({"json": {"text": "a\x00\x01\x02b"}}, 400, "binary"),
    ({"data": b"\xff\xfe\x00", "content_type": "application/json"}, 400, "string field 'text'"),
    ({"data": "text", "content_type": "text/plain"}, 415, "send JSON"),
    ({"data": b"x" * (5 * MAX_CHARS), "content_type": "application/json"}, 413, "too large"),
])
def test_api_errors_are_json_4xx_and_the_server_keeps_serving(app, kwargs, status, message):
    client = app.test_client()
    r = client.post("/api/label", **kwargs)
    assert r.status_code == status and message in r.get_json()["error"]
    assert client.post("/api/label", json={"text": ABSTRACT}).status_code == 200


@pytest.fixture(scope="module")
def server(app):
    srv = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{srv.server_port}/"
    srv.shutdown()


def test_page_in_chromium_shows_coloured_sections(server, tmp_path):
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run"])
        page = browser.new_page()
        page.goto(server)
        page.fill("#text", ABSTRACT)
        page.click("#go")
        page.wait_for_selector(".section")
        labels = page.eval_on_selector_all(".section", "els => els.map(e => e.dataset.label)")
        assert labels == ROLES
        colours = page.eval_on_selector_all(".section", "els => els.map(e => getComputedStyle(e).borderLeftColor)")
        assert len(set(colours)) == len(ROLES)  # each role its own colour
        title = page.get_attribute(".sentence[data-label=METHODS]", "title")
        assert title.splitlines()[0].startswith("METHODS: ")  # probabilities on hover, best first
        page.screenshot(path=str(tmp_path / "page.png"))
        page.fill("#text", "   ")
        page.click("#go")
        page.wait_for_function("document.getElementById('error').textContent.length > 0")
        assert "empty" in page.inner_text("#error") and page.query_selector(".section") is None
        browser.close()
