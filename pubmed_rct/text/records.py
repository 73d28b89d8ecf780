"""Records of the inputs a person gives: one abstract per record, each named where it came from, a bad one
carrying the reason it cannot be labelled instead of stopping the rest. JSON Lines are read here, for
`predict --jsonl` and the label job alike."""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, BinaryIO, Iterator

from .normalize import utf8_fault


@dataclass
class Record:
    """One record of an input, numbered `position` in its file: an abstract to label (`sections` (heading,
    category, text) from XML, or `text`), a fault (`error`) with `where` it was found, a record with nothing to
    label (`skipped`: no_abstract, book) or a DeleteCitation's PMIDs (`deleted`). `id`: the PMID, or a JSON
    line's own id (any JSON value; its line number where it has none)."""
    id: Any
    where: str
    position: int = 0
    text: str | None = None
    sections: list | None = None
    error: str | None = None
    line: int | None = None
    skipped: str | None = None
    deleted: list | None = None


def jsonl(uri: str, stream: BinaryIO) -> Iterator[Record]:
    """The records of a JSON Lines file, numbered from 0 (`predict --jsonl`, the label job)."""
    return jsonl_records(uri, stream, 0, 1)


def jsonl_records(uri: str, stream: BinaryIO, position: int, number: int) -> Iterator[Record]:
    """JSON Lines read as bytes and decoded line by line, so one undecodable line is named and the others kept;
    lines end at \\n only (JSON strings may hold U+2028, where str.splitlines would cut); a byte-order mark is
    dropped. A line is {"id": ..., "text": "..."} or a JSON string; a blank line is no record."""
    for number, raw in enumerate(stream, number):
        if number == 1:
            raw = raw.removeprefix(b"\xef\xbb\xbf")
        if not raw.strip():
            continue
        where = f"{uri}:{number}"
        record = Record(number, where, position, line=number)
        position += 1
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            record.error = f"not UTF-8 ({utf8_fault(e, unit='column')}); re-encode the line as UTF-8"
            yield record
            continue
        try:
            item = json.loads(line)
        except (ValueError, RecursionError) as e:
            record.error = f"not JSON ({getattr(e, 'msg', 'nested too deeply')})"
            yield record
            continue
        item = {"text": item} if isinstance(item, str) else item
        if not isinstance(item, dict) or not isinstance(item.get("text"), str):
            record.error = 'expected {"id": ..., "text": "..."}'
        else:
            record.id, record.text = item.get("id", number), item["text"]
        yield record
