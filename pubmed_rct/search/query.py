"""Searching the index: BM25-ranked sentences, filtered by role, by how sure the model was and by who labelled
them, each with its words marked and the way back to PubMed; and one abstract regrouped by role.

A query is words and "quoted phrases", nothing else: every other character (AND, OR, NOT, *, :, ^, brackets,
HTML, lone surrogates) is a separator, so no query is a syntax error and none reaches the engine's own query
language. All words must match (a phrase as a phrase); stems match (trial finds trials).
"""
from __future__ import annotations

import html
import re
from pathlib import Path

from .index import open_index, registry

PUBMED = "https://pubmed.ncbi.nlm.nih.gov/{}/"
MAX_CHARS, MAX_WORDS, MAX_LIMIT = 1000, 32, 200
WORD = re.compile(r"[^\W_]+")  # letters and digits of any script
PHRASE = re.compile(r'"([^"]*)"')


class QueryError(ValueError):
    """A query or filter that cannot be searched for; the message says what to change (a 400 on the API)."""


def words_of(query: str) -> tuple[list[str], list[list[str]]]:
    """(words, phrases) of a query, or QueryError where it is too long."""
    if len(query) > MAX_CHARS:
        raise QueryError(f"the query has {len(query):,} characters; the limit is {MAX_CHARS:,}")
    phrases = [WORD.findall(p) for p in PHRASE.findall(query)]
    words = WORD.findall(PHRASE.sub(" ", query))
    if len(words) + sum(map(len, phrases)) > MAX_WORDS:
        raise QueryError(f"the query has more than {MAX_WORDS} words; search with fewer")
    return words, [p for p in phrases if p]


class Searcher:
    """An open index (its registry: source, model, labels) answering searches; safe to share between threads."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.index = open_index(self.folder)
        self.registry = registry(self.folder) or {}
        self.schema = self.index.schema
        self.roles = self.registry.get("labels", [])

    def _query(self, words, phrases, roles, min_probability, source):
        import tantivy
        must = []
        if words or phrases:
            text = " ".join([f'"{w}"' for w in words] + ['"' + " ".join(p) + '"' for p in phrases])
            must.append(self.index.parse_query(text, ["text"], conjunction_by_default=True))
        if roles:
            must.append(tantivy.Query.term_set_query(self.schema, "role", [r.lower() for r in roles]))
        if source:
            must.append(tantivy.Query.term_query(self.schema, "source", source))
        if min_probability:
            must.append(tantivy.Query.range_query(self.schema, "probability", tantivy.FieldType.Float,
                                                  lower_bound=float(min_probability)))
        if not must:
            raise QueryError("give words to search for, or a role, a probability or a source to filter on")
        return tantivy.Query.boolean_query([(tantivy.Occur.Must, q) for q in must]), bool(words or phrases)

    def search(self, query: str, roles: list[str] | None = None, min_probability: float | None = None,
               source: str | None = None, limit: int = 20) -> dict:
        """{"count": matches, "hits": [...]}: each hit its PMID, role, probability, sentence and marks."""
        import tantivy
        check(roles, min_probability, source, limit, self.roles)
        words, phrases = words_of(query)
        self.index.reload()  # a build that finished since: its commit is what the next search sees
        searcher = self.index.searcher()
        built, scored = self._query(words, phrases, roles, min_probability, source)
        found = searcher.search(built, limit)
        snippets = None
        if scored:
            text_query = self._query(words, phrases, None, None, None)[0]
            snippets = tantivy.SnippetGenerator.create(searcher, text_query, self.schema, "text")
            snippets.set_max_num_chars(100_000)
        hits = []
        for score, address in found.hits:
            doc = searcher.doc(address)
            hit = {k: (v[0] if v else None) for k, v in doc.to_dict().items()}
            marks = _marks(hit["text"], snippets.snippet_from_doc(doc)) if snippets else []
            hits.append({"id": hit["id"], "sentence_index": hit["sentence_index"], "label": hit["label"],
                         "probability": round(hit["probability"], 4), "source": hit["source"],
                         "heading": hit["heading"] or None, "text": hit["text"], "marks": marks,
                         "marked_html": mark_html(hit["text"], marks), "score": round(score, 4),
                         "link": PUBMED.format(hit["id"]), "model_version": hit["model_version"] or None})
        return {"count": found.count, "hits": hits}

    def abstract(self, pmid: str) -> list[dict]:
        """Every sentence of one PMID in order, as `predict` gives an abstract's (for regrouping by role)."""
        import tantivy
        if not WORD.fullmatch(pmid or ""):
            raise QueryError("a PMID is letters and digits, e.g. 31452104")
        searcher = self.index.searcher()
        found = searcher.search(tantivy.Query.term_query(self.schema, "id", pmid), 10_000)
        out = []
        for _, address in found.hits:
            d = {k: (v[0] if v else None) for k, v in searcher.doc(address).to_dict().items()}
            out.append({"sentence": d["text"], "label": d["label"], "probability": round(d["probability"], 4),
                        "heading": d["heading"] or None, "source": d["source"], "sentence_index": d["sentence_index"]})
        return sorted(out, key=lambda s: s["sentence_index"])


def check(roles, min_probability, source, limit, known: list[str]) -> None:
    """Filters as the index can take them, or QueryError naming the one that cannot be."""
    lower = {r.lower() for r in known}
    for role in roles or []:
        if known and role.lower() not in lower:
            raise QueryError(f"role {role!r} is not in this index; its roles are {', '.join(sorted(known))}")
    if min_probability is not None and not 0 <= min_probability <= 1:
        raise QueryError(f"min-probability {min_probability} is not between 0 and 1")
    if source not in (None, "author", "model"):
        raise QueryError(f"source {source!r} is not author or model")
    if not 1 <= limit <= MAX_LIMIT:
        raise QueryError(f"limit {limit} is not between 1 and {MAX_LIMIT}")


def _marks(text: str, snippet) -> list[list[int]]:
    """The matched words' [start, end) character offsets in the whole sentence (tantivy gives byte ranges in
    its fragment)."""
    fragment = snippet.fragment().encode("utf-8")
    whole = text.encode("utf-8")
    at = whole.find(fragment)
    if at < 0:
        return []
    return [[len(whole[:at + r.start].decode("utf-8", "ignore")), len(whole[:at + r.end].decode("utf-8", "ignore"))]
            for r in snippet.highlighted()]


def mark_html(text: str, marks: list[list[int]]) -> str:
    """The sentence as HTML, escaped, its matched words in <mark>."""
    out, at = [], 0
    for start, end in marks:
        out += [html.escape(text[at:start]), "<mark>", html.escape(text[start:end]), "</mark>"]
        at = end
    return "".join(out + [html.escape(text[at:])])


def mark_text(text: str, marks: list[list[int]], left: str = "**", right: str = "**") -> str:
    out, at = [], 0
    for start, end in marks:
        out += [text[at:start], left, text[start:end], right]
        at = end
    return "".join(out + [text[at:]])
