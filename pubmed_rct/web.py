"""The web page and JSON API: paste an abstract, get its sentences labelled and grouped by role.

Served by waitress (a production WSGI server in pure Python): a bounded pool of threads, timeouts on idle
connections, a cap on connections; every error answers JSON, an internal one included.
"""
from __future__ import annotations

import ipaddress
import logging
import sys
import threading
from pathlib import Path

from flask import Flask, jsonify, request
from werkzeug.exceptions import HTTPException

from .sections import sections
from .sentences import MAX_CHARS, InputError

STATIC = Path(__file__).parent / "static"


def create_app(labeler) -> Flask:
    app = Flask(__name__, static_folder=None)
    # bytes: JSON may escape a character as up to 12 bytes (a \uXXXX pair beyond the BMP); the character
    # limit itself is checked on the decoded text
    app.config["MAX_CONTENT_LENGTH"] = 12 * MAX_CHARS + 1024
    lock = threading.Lock()  # one model call at a time: torch already uses every core

    def error(status: int, message: str):
        return jsonify({"error": message}), status

    @app.get("/")
    def index():
        return (STATIC / "index.html").read_text(encoding="utf-8"), 200, {"Content-Type": "text/html; charset=utf-8"}

    @app.get("/api/health")
    def health():
        return jsonify({"status": "ok", "context": labeler.mode, "labels": labeler.labels})

    @app.post("/api/label")
    def label():
        if not request.is_json:
            return error(415, "send JSON: {\"text\": \"<abstract>\"} with Content-Type: application/json")
        body = request.get_json(silent=True)
        if not isinstance(body, dict) or not isinstance(body.get("text"), str):
            return error(400, "expected a JSON object with a string field 'text'")
        try:
            with lock:
                sentences = labeler.label([body["text"]])[0]
        except InputError as e:
            return error(413 if "limit" in str(e) else 400, str(e))
        return jsonify({"context": labeler.mode, "labels": labeler.labels, "sentences": sentences,
                        "sections": sections(sentences)})

    @app.errorhandler(413)
    def too_large(_):
        return error(413, f"request too large; one abstract of at most {MAX_CHARS:,} characters")

    @app.errorhandler(404)
    def not_found(_):
        return error(404, "not found")

    @app.errorhandler(405)
    def not_allowed(_):
        return error(405, "method not allowed")

    @app.errorhandler(Exception)
    def internal(e: Exception):
        if isinstance(e, HTTPException):
            return error(e.code or 500, e.description or e.name)
        log.exception("error while answering %s %s", request.method, request.path)
        return error(500, "internal error while labelling; the server logged it and keeps serving")

    return app


log = logging.getLogger("pubmed_rct.web")


def make_server(app: Flask, host: str = "127.0.0.1", port: int = 8000, threads: int = 4):
    """A waitress server for `app` (call .run(); .close() stops it): `threads` workers, idle connections closed
    after 60 s, at most 100 open connections. Bound beyond loopback, it says what is exposed."""
    from waitress import create_server
    if not _loopback(host):
        print(f"WARNING: serving on {host}:{port}, reachable from other machines: anyone who can connect can label "
              "text with this model, without authentication or TLS. Put it behind a reverse proxy with TLS and "
              "access control (docs/predict.md).", file=sys.stderr, flush=True)
    return create_server(app, host=host, port=port, threads=threads, channel_timeout=60, connection_limit=100,
                         max_request_body_size=app.config["MAX_CONTENT_LENGTH"], ident="pubmed-rct")


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: may resolve anywhere
        return False
