"""The web page and JSON API: paste an abstract, get its sentences labelled and grouped by role.

Served by waitress (a production WSGI server in pure Python): a bounded pool of threads, timeouts on idle
connections, a cap on connections; every error answers JSON, an internal one included.
"""
from __future__ import annotations

import ipaddress
import json
import logging
import sys
import threading
from pathlib import Path

from flask import Flask, jsonify, request
from werkzeug.exceptions import HTTPException

from ..text.sections import sections
from ..text.sentences import MAX_CHARS, InputError

STATIC = Path(__file__).parent / "static"


def error(status: int, message: str):
    """Every answer that is not a success: JSON naming the problem."""
    return jsonify({"error": message}), status


def page(name: str):
    return (STATIC / name).read_text(encoding="utf-8"), 200, {"Content-Type": "text/html; charset=utf-8"}


def create_app(labeler, searcher=None) -> Flask:
    """The page and API for `labeler`; with `searcher` (search.query.Searcher) the search view and its API too
    (search/api.py)."""
    app = Flask(__name__, static_folder=None)
    # bytes: JSON may escape a character as up to 12 bytes (a \uXXXX pair beyond the BMP); the character
    # limit itself is checked on the decoded text
    app.config["MAX_CONTENT_LENGTH"] = 12 * MAX_CHARS + 1024

    @app.get("/")
    def index():
        return page("index.html")

    @app.get("/api/health")
    def health():
        return jsonify({"status": "ok", "context": labeler.context, "labels": labeler.labels, "max_chars": MAX_CHARS,
                        "search": searcher is not None, "roles": searcher.roles if searcher else []})

    _label_route(app, labeler)
    if searcher is not None:
        from ..search.api import blueprint
        app.register_blueprint(blueprint(searcher))
    _error_handlers(app)
    return app


def _label_route(app: Flask, labeler) -> None:
    lock = threading.Lock()  # one model call at a time: torch already uses every core

    @app.post("/api/label")
    def label():
        if not request.is_json:
            return error(415, "send JSON: {\"text\": \"<abstract>\"} with Content-Type: application/json")
        try:  # parsed here: Flask's get_json lets a RecursionError (a body of 10,000 '[') through as a 500
            body = json.loads(request.get_data())
        except (ValueError, RecursionError) as e:
            why = "nested too deeply" if isinstance(e, RecursionError) else "not JSON"
            return error(400, f"the body is {why}; expected a JSON object with a string field 'text'")
        if not isinstance(body, dict) or not isinstance(body.get("text"), str):
            return error(400, "expected a JSON object with a string field 'text'")
        try:
            with lock:
                sentences = labeler.label([body["text"]], relabel=body.get("relabel") is True)[0]
        except InputError as e:
            return error(413 if "limit" in str(e) else 400, str(e))
        return jsonify({"context": labeler.context, "labels": labeler.labels, "sentences": sentences,
                        "sections": sections(sentences)})


def _error_handlers(app: Flask) -> None:
    @app.errorhandler(413)
    def too_large(_):
        size = f" ({request.content_length:,} bytes)" if request.content_length else ""
        return error(413, f"request too large{size}; the limit is one abstract of at most {MAX_CHARS:,} characters "
                          f"({app.config['MAX_CONTENT_LENGTH']:,} bytes of JSON)")

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


log = logging.getLogger("pubmed_rct.web")


# Bodies up to this size reach the app, which answers a JSON 413 past its own limit (MAX_CONTENT_LENGTH); only a
# body beyond it gets waitress's own plain-text 413. Waitress spools large bodies to a temporary file, not memory.
SERVER_BODY_LIMIT = 32 * 1024 * 1024


def make_server(app: Flask, host: str = "127.0.0.1", port: int = 8000, threads: int = 4,
                request_deadline_s: int = 30):
    """A waitress server for `app` (call .run(); .close() stops it): `threads` workers, idle connections closed
    after 60 s, at most 100 open connections, and each request read within `request_deadline_s` (headers and
    body) or its connection closed. Bound beyond loopback, it says what is exposed."""
    from waitress import create_server
    if not _loopback(host):
        print(f"WARNING: serving on {host}:{port}, reachable from other machines: anyone who can connect can label "
              "text with this model, without authentication or TLS. Put it behind a reverse proxy with TLS and "
              "access control (docs/predict.md).", file=sys.stderr, flush=True)
    server = create_server(app, host=host, port=port, threads=threads, channel_timeout=60, connection_limit=100,
                           cleanup_interval=max(1, request_deadline_s // 3), max_request_body_size=SERVER_BODY_LIMIT,
                           ident="pubmed-rct")
    _add_request_deadline(server, request_deadline_s)
    return server


def _add_request_deadline(server, seconds: float) -> None:
    """Close connections whose request has been arriving for longer than `seconds`.

    Waitress's own timeout (channel_timeout) restarts with every byte, so clients that each send a byte now and
    then hold every connection for as long as they like (slowloris). Waitress has no setting for a deadline;
    its maintenance pass, which closes idle connections every cleanup_interval, here also closes those whose
    request (`channel.request`, the parser of a request not yet complete) is older than the deadline, by the
    same flag it uses itself (`will_close`)."""
    idle = server.maintenance
    started: dict = {}  # channel -> (the request being read, when it was first seen)

    def maintenance(now: float) -> None:
        idle(now)
        channels = list(server.active_channels.values())
        for channel in set(started) - set(channels):
            del started[channel]
        for channel in channels:
            request = getattr(channel, "request", None)
            if request is None:
                started.pop(channel, None)
                continue
            seen, since = started.setdefault(channel, (request, now))
            if seen is not request:
                started[channel] = (request, now)
            elif now - since > seconds:
                channel.will_close = True

    server.maintenance = maintenance


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: may resolve anywhere
        return False
