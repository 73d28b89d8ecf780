"""The search view's routes on the project's server (`serve --index DIR`): the page, `GET /api/search` and
`GET /api/abstract/PMID`, each a 200 or a JSON 4xx naming the problem."""
from __future__ import annotations

from pathlib import Path

from flask import Blueprint, jsonify, request

from ..text.sections import sections
from .query import PUBMED, QueryError

PAGE = Path(__file__).parent / "static" / "search.html"


def error(status: int, message: str):
    return jsonify({"error": message}), status


def blueprint(searcher) -> Blueprint:
    routes = Blueprint("search", __name__)

    @routes.get("/search")
    def search_page():
        return PAGE.read_text(encoding="utf-8"), 200, {"Content-Type": "text/html; charset=utf-8"}

    @routes.get("/api/search")
    def search():
        args = request.args
        try:
            limit = _number(args, "limit", int)
            found = searcher.search(args.get("q", ""), args.getlist("role") or None,
                                    _number(args, "min_probability", float), args.get("source") or None,
                                    20 if limit is None else limit)
        except QueryError as e:
            return error(400, str(e))
        return jsonify({"query": args.get("q", ""), **found})

    @routes.get("/api/abstract/<pmid>")
    def abstract(pmid: str):
        try:
            sentences = searcher.abstract(pmid)
        except QueryError as e:
            return error(400, str(e))
        if not sentences:
            return error(404, f"no sentence of PMID {pmid} in the index")
        return jsonify({"id": pmid, "link": PUBMED.format(pmid), "sentences": sentences,
                        "sections": sections(sentences)})

    return routes


def _number(args, name: str, kind):
    """A number from the query string, or None; one that is not a number is the user's error (a 400)."""
    value = args.get(name)
    if value in (None, ""):
        return None
    try:
        return kind(value)
    except ValueError:
        raise QueryError(f"{name} {value[:40]!r} is not a {'whole ' if kind is int else ''}number") from None
