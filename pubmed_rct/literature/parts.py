"""The label job's output: the Parquet parts under OUT/sentences/, one per unit of work, local or on S3.

A part's name is fixed by its unit (input and range), so a retried or speculative task writes the same part
again and never a second copy; it appears whole or not at all (a local file renamed into place; an S3 object
is one PUT). Its footer keeps what the rows cannot show: the unit, and the PMIDs of its records that have
nothing to label (withdrawn by a DeleteCitation, or a citation without an abstract), which a later version
of a PMID needs to supersede an earlier one (supersede.py).
"""
from __future__ import annotations

import hashlib
import io
import json
import re
from pathlib import Path

from ..io import read_parquet, write_parquet
from .inputs import is_s3, s3

# One row per sentence: the columns of OUT/sentences (docs/label.md), in order, with their Arrow types.
COLUMNS = {"id": "string", "sentence_index": "int32", "text": "string", "label": "string", "probability": "float32",
           "heading": "string", "heading_category": "string", "source": "string", "input": "string",
           "model": "string", "model_version": "string"}
META = b"pubmed_rct"


def schema():
    import pyarrow as pa
    return pa.schema([(name, getattr(pa, kind)()) for name, kind in COLUMNS.items()])


def part_name(uri: str, unit: int) -> str:
    """sentences/part-<file stem>-<hash of the input>-<unit>.parquet"""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(uri.rstrip("/")).name)[:80]
    return f"sentences/part-{stem}-{hashlib.sha1(uri.encode()).hexdigest()[:8]}-{unit:05d}.parquet"


def join(out: str, name: str) -> str:
    return f"{out.rstrip('/')}/{name}"


def table(rows: list[dict], model: dict, meta: dict):
    """The part's Arrow table (COLUMNS, in row order) with `meta` in its footer."""
    import pyarrow as pa
    columns = {name: [r.get(name) for r in rows] for name in COLUMNS if name not in ("model", "model_version")}
    columns["model"] = [model["uri"]] * len(rows)
    columns["model_version"] = [model["version"]] * len(rows)
    return pa.table(columns, schema=schema()).replace_schema_metadata({META: json.dumps(meta).encode()})


def write(out: str, name: str, part, options: dict | None = None) -> None:
    """Write a part whole or not at all, with page checksums (io.write_parquet)."""
    if is_s3(out):
        import pyarrow.parquet as pq
        buffer = io.BytesIO()
        pq.write_table(part, buffer, write_page_checksum=True)
        s3(options).pipe(join(out, name), buffer.getvalue())  # one PUT: the object appears whole or not at all
    else:
        write_parquet(part, Path(out) / name)


def read(out: str, name: str, columns: list[str] | None = None, options: dict | None = None):
    """A part (checksums verified), or just `columns` of it."""
    if is_s3(out):
        import pyarrow.parquet as pq
        with s3(options).open(join(out, name), "rb") as f:
            return pq.read_table(f, columns=columns, page_checksum_verification=True)
    return read_parquet(Path(out) / name, columns)


def meta(part) -> dict:
    """What write kept in a part's footer."""
    raw = (part.schema.metadata or {}).get(META)
    return json.loads(raw) if raw else {}


def listing(out: str, options: dict | None = None) -> list[str]:
    """The part names now under OUT/sentences (finished ones only: a local write in progress is hidden)."""
    if is_s3(out):
        fs = s3(options)
        prefix = join(out, "sentences")[5:]
        return sorted(f"sentences/{p.rsplit('/', 1)[1]}" for p in (fs.find(prefix) if fs.exists(prefix) else [])
                      if p.endswith(".parquet"))
    folder = Path(out) / "sentences"
    return sorted(f"sentences/{p.name}" for p in folder.glob("part-*.parquet")) if folder.is_dir() else []


def remove(out: str, name: str, options: dict | None = None) -> None:
    if is_s3(out):
        s3(options).rm(join(out, name))
    else:
        (Path(out) / name).unlink(missing_ok=True)
