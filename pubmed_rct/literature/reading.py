"""The label job's inputs read in ranges of records, on the executor that labels them: PubMed XML, JSON Lines
and Parquet, each record or its fault named in its place, never stopping the rest.

`scan` reads a file once: how many records it holds, the fault that ends it if any, and where every
`chunk`-th record starts (a byte offset, and for JSON Lines its line), so that `read` gives records
[start, stop) without reading the ones before them (a .gz is still decompressed up to the offset: fast
beside parsing). Records are numbered from 0 in file order, the same way by both.
"""
from __future__ import annotations

import base64
from typing import BinaryIO, Iterator

from ..text.records import Record, jsonl_records as _jsonl
from . import pubmed_xml
from .inputs import SourceError, open_input


def kind_of(uri: str) -> str:
    return "xml" if uri.endswith((".xml", ".xml.gz")) else "parquet" if uri.endswith(".parquet") else "jsonl"


def scan(uri: str, chunk: int, options: dict | None = None) -> dict:
    """What the planner needs of one input: {records, fault, lost, offsets, lines, header}. An input that cannot
    be opened at all raises SourceError."""
    kind = kind_of(uri)
    with open_input(uri, options) as stream:
        if kind == "xml":
            found = pubmed_xml.scan(uri, stream, chunk)
            return {"records": found.records, "deletions": found.deletions, "fault": found.fault, "lost": found.lost,
                    "offsets": found.offsets, "lines": None,
                    "header": base64.b64encode(found.header).decode() if found.offsets else None}
        if kind == "parquet":
            return {"records": _parquet_file(uri, stream).metadata.num_rows, "fault": None, "lost": 0,
                    "offsets": None, "lines": None, "header": None}
        return _scan_jsonl(stream, chunk)


def _scan_jsonl(stream: BinaryIO, chunk: int) -> dict:
    records, offsets, lines, at = 0, [], [], 0
    for number, raw in enumerate(stream, 1):
        if raw.strip():  # a blank line is no record (here and in _jsonl alike)
            if records % chunk == 0:
                offsets.append(at)
                lines.append(number)
            records += 1
        at += len(raw)
    return {"records": records, "fault": None, "lost": 0, "offsets": offsets, "lines": lines, "header": None}


def read(uri: str, start: int, stop: int, plan: dict | None = None, chunk: int | None = None,
         options: dict | None = None) -> Iterator[Record]:
    """Records [start, stop) of an input, in order; with `plan` (scan's result for `chunk`) read from the offset
    where `start` begins. A file-level fault (not well formed, broken off) raises pubmed_xml.XMLError after the
    records before it; a file that cannot be opened, SourceError."""
    kind = kind_of(uri)
    k = start // chunk if plan and chunk and start % chunk == 0 else None
    offsets = plan.get("offsets") if plan else None
    offset = offsets[k] if offsets is not None and k is not None and k < len(offsets) else None
    with open_input(uri, options) as stream:
        if kind == "parquet":
            yield from _parquet(uri, stream, start, stop)
            return
        if kind == "xml":
            raw = pubmed_xml.decompressed(uri, stream)
            if offset is not None:
                _skip(raw, offset)
                raw, first = _Joined(base64.b64decode(plan["header"]), raw), start
            else:
                first = 0
            source = _xml(uri, pubmed_xml.records(uri, raw, first), first)
        else:
            first, line = 0, 1
            if offset is not None:
                _skip(stream, offset)
                first, line = start, plan["lines"][k]
            source = _jsonl(uri, stream, first, line)
        for record in source:
            if record.position >= stop:
                break
            if record.position >= start:
                yield record


def _skip(stream: BinaryIO, offset: int) -> None:
    """Move to byte `offset`: a seek where the stream can (a local file, an S3 object by range), else read past."""
    try:
        if stream.seekable():  # a local file, an S3 object (ranged reads); not a .gz (pubmed_xml.Gunzip)
            stream.seek(offset)
            return
    except (AttributeError, OSError):
        pass
    while offset > 0:
        block = stream.read(min(offset, 1 << 20))
        if not block:
            raise SourceError("the file is shorter than when it was planned; it changed: run the job again")
        offset -= len(block)


class _Joined:
    """The file's header (XML declaration, DOCTYPE, root start tag), then its bytes from a record's start."""

    def __init__(self, header: bytes, rest: BinaryIO):
        self.header, self.rest = header, rest

    def read(self, n: int = -1) -> bytes:
        if self.header:
            out, self.header = self.header, b""
            return out
        return self.rest.read(n if n and n > 0 else 1 << 16)


def _xml(uri: str, items, first: int) -> Iterator[Record]:
    """Citations numbered from `first`; a DeleteCitation numbered as the citation before it (0 before any), so
    that it is read by that citation's unit."""
    position = first
    for item in items:
        if isinstance(item, pubmed_xml.Deletion):
            yield Record(None, f"{uri} DeleteCitation after citation {position:,}", max(position - 1, 0),
                         deleted=item.pmids)
            continue
        where = f"{uri} PMID {item.pmid}"
        if isinstance(item, pubmed_xml.Citation):
            yield Record(item.pmid, where, position, sections=item.sections)
        else:
            yield Record(item.pmid, where, position, skipped=item.why)
        position += 1


def _parquet_file(uri: str, stream: BinaryIO):
    import pyarrow as pa
    import pyarrow.parquet as pq
    try:
        parquet = pq.ParquetFile(stream)
    except (OSError, pa.ArrowException) as e:
        raise SourceError(f"{uri}: cannot be read as Parquet ({' '.join(str(e).split())[:200]})") from e
    if "text" not in parquet.schema_arrow.names:
        raise SourceError(f"{uri}: no 'text' column (found {parquet.schema_arrow.names}); expected id, text")
    return parquet


def _parquet(uri: str, stream: BinaryIO, start: int, stop: int) -> Iterator[Record]:
    """Rows [start, stop) of a Parquet file: only the row groups that hold them are read."""
    import pyarrow as pa
    parquet = _parquet_file(uri, stream)
    has_id = "id" in parquet.schema_arrow.names
    groups, row = [], 0
    for g in range(parquet.metadata.num_row_groups):
        n = parquet.metadata.row_group(g).num_rows
        if row < stop and row + n > start:
            groups.append(g)
        elif not groups:
            row += n
    try:
        for batch in parquet.iter_batches(row_groups=groups, columns=["id", "text"] if has_id else ["text"],
                                          batch_size=1024):
            for values in batch.to_pylist():
                if start <= row < stop:
                    text, rid = values["text"], str(values["id"]) if has_id else str(row + 1)
                    where = f"{uri} row {row + 1}"
                    yield (Record(rid, where, row, text=text) if isinstance(text, str)
                           else Record(rid, where, row, error="text is not a string"))
                row += 1
    except (OSError, pa.ArrowException) as e:
        raise SourceError(f"{uri}: cannot be read as Parquet ({' '.join(str(e).split())[:200]})") from e
