"""The local web page and JSON API: paste an abstract, get its sentences labelled and grouped by role."""
from __future__ import annotations

import threading
from pathlib import Path

from flask import Flask, jsonify, request

from .cli import sections
from .sentences import MAX_CHARS, InputError

STATIC = Path(__file__).parent / "static"


def create_app(labeler) -> Flask:
    app = Flask(__name__, static_folder=None)
    app.config["MAX_CONTENT_LENGTH"] = 4 * MAX_CHARS + 1024  # bytes; the character limit is checked below
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

    return app
