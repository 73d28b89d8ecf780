"""NLM's rule across the whole output: a later record of a PMID supersedes every earlier one, a DeleteCitation
withdraws it, so the output holds each PMID once, in its latest version, and no withdrawn one.

Later means later in file order: the order in which inputs entered the manifest (sorted within a run, so a
baseline before its update files), then the unit within the input. Inside a unit the worker has applied the
rule already (worker._versions); this pass applies it between units, as a Spark program on the executors: each
task reads the `id` column and footer of its parts, Spark's shuffle finds each PMID's latest version, and each
part holding an older one is rewritten without it (same name, whole or not at all). The driver sees only a
count per rewritten part. Run at the end of every job; a part already rewritten is left as it is, so a pass
killed half-way is finished by the next.
"""
from __future__ import annotations

from functools import partial

from . import parts
from .reading import kind_of


def _events(out: str, options: dict | None, item: tuple):
    """(pmid, (key, part, kind)) for each PMID of a part: its rows, and the PMIDs of records with nothing to
    label (a citation without abstract, a DeleteCitation)."""
    name, key = item
    table = parts.read(out, name, ["id"], options)
    events = parts.meta(table).get("events", {})
    for pmid in set(table.column("id").to_pylist()):
        yield pmid, (key, name, "rows")
    for kind in ("no_abstract", "deleted"):
        for pmid in events.get(kind, []):
            yield pmid, (key, name, kind)


def _drop(out: str, options: dict | None, item: tuple) -> tuple[str, int, int]:
    """Rewrite a part without the PMIDs superseded later; (part, rows dropped, abstracts dropped)."""
    import pyarrow as pa
    import pyarrow.compute as pc
    name, pmids = item
    table = parts.read(out, name, None, options)
    stale = pc.is_in(table.column("id"), value_set=pa.array(sorted(set(pmids)), pa.string()))
    kept = table.filter(pc.invert(stale))
    dropped = table.num_rows - kept.num_rows
    if dropped:
        parts.write(out, name, kept.replace_schema_metadata(table.schema.metadata), options)
    return name, dropped, len(set(pmids))


def supersede(engine, out: str, manifest: dict, options: dict | None = None) -> list[tuple[str, int, int]]:
    """Drop every superseded or withdrawn version from the parts; [(part, rows, abstracts)] of those changed."""
    keyed = [(name, (entry["order"], k)) for uri, entry in manifest["inputs"].items() if kind_of(uri) == "xml"
             for k, name in enumerate(entry["parts"])]
    if not keyed:
        return []
    slices = max(1, min(len(keyed), 2 * engine.workers))
    stale = (engine.context.parallelize(keyed, slices).flatMap(partial(_events, out, options))
             .groupByKey(slices).flatMap(_stale).groupByKey(slices))
    from .spark import task_errors
    with task_errors():
        return [r for r in stale.map(partial(_drop, out, options)).collect() if r[1]]


def _stale(item: tuple):
    """(part, pmid) for each part that holds rows of a PMID superseded by a later version of it."""
    pmid, events = item
    events = list(events)
    latest = max(key for key, _, _ in events)
    for key, name, kind in events:
        if kind == "rows" and tuple(key) < tuple(latest):
            yield name, pmid
