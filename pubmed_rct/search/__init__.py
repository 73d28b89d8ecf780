"""The search wing: a labelled literature (the label job's Parquet parts) made searchable by role.

The engine is tantivy (PyPI `tantivy`, the Python bindings of the Rust library): an embedded, Lucene-style
index with BM25, filters that cost little (a term set on the role, a range on a fast probability field),
incremental commits that are atomic, and highlighting. Chosen by measurement against SQLite FTS5 (Python's
sqlite3) on the same 10 million generated sentences, with a scan of the Parquet (pyarrow) as the floor:
benchmarks/search_engines.py, figures in benchmarks/README.md, the choice in docs/search.md.
"""
