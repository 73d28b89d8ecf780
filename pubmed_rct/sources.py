"""The label job's inputs: local paths, globs and folders, or `s3://` prefixes on the DVC remote's S3 store;
each read as a stream of records (PubMed XML citations, JSON Lines or Parquet rows), a bad record named and
counted in its place, never stopping the rest.

S3 goes through s3fs (the filesystem DVC itself uses), with the endpoint and credentials DVC takes: the
`storage` remote's `endpointurl`, `access_key_id`, `secret_access_key` in `.dvc/config` and
`.dvc/config.local`, else the AWS environment (AWS_ACCESS_KEY_ID, AWS_ENDPOINT_URL...).
"""
from __future__ import annotations

import configparser
import glob
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from . import pubmed_xml

SUFFIXES = (".xml", ".xml.gz", ".jsonl", ".json", ".parquet")


class SourceError(ValueError):
    """An input that cannot be found or read at all; the message names it and what to do."""


@dataclass
class Record:
    """One abstract to label: `sections` (heading, category, text) from XML, or `text`; or the `error` that
    keeps it from being labelled, with `where` (file and record or line) it was found. `id`: the PMID, or a
    JSON line's own id (any JSON value; its line number where it has none)."""
    id: Any
    where: str
    text: str | None = None
    sections: list | None = None
    error: str | None = None
    line: int | None = None


def _dvc_s3_options(root: Path = Path(".")) -> dict:
    config = configparser.ConfigParser()
    config.read([root / ".dvc" / "config", root / ".dvc" / "config.local"])
    # configobj (DVC's reader) writes ['remote "storage"']; configparser keeps the quotes in the name
    section = next((s for s in config.sections() if s.strip("'").startswith("remote ")), None)
    if section is None:
        return {}
    remote = config[section]
    options = {}
    if remote.get("access_key_id"):
        options.update(key=remote["access_key_id"], secret=remote.get("secret_access_key"))
    if remote.get("endpointurl"):
        options["client_kwargs"] = {"endpoint_url": remote["endpointurl"]}
    return options


def s3() -> "object":
    import s3fs
    options = _dvc_s3_options()
    if "client_kwargs" not in options and os.environ.get("AWS_ENDPOINT_URL"):
        options["client_kwargs"] = {"endpoint_url": os.environ["AWS_ENDPOINT_URL"]}
    return s3fs.S3FileSystem(**options)


def _supported(name: str) -> bool:
    return name.endswith(SUFFIXES)


def expand(specs: list[str]) -> list[str]:
    """Every input file named by `specs` (paths, globs, folders, s3:// prefixes or objects), sorted, each once.
    A spec that names nothing is a SourceError."""
    found: list[str] = []
    for spec in specs:
        if spec.startswith("s3://"):
            names = _s3_listing(spec)
        elif os.path.isdir(spec):
            names = sorted(str(p) for p in Path(spec).rglob("*") if p.is_file() and _supported(p.name))
        else:
            names = sorted(glob.glob(spec, recursive=True)) or ([spec] if os.path.isfile(spec) else [])
        names = [n for n in names if _supported(n)]
        if not names:
            raise SourceError(f"{spec}: no input found (PubMed XML .xml/.xml.gz, JSON Lines .jsonl, or .parquet)")
        found.extend(n for n in names if n not in found)
    return found


def _s3_listing(spec: str) -> list[str]:
    from botocore.exceptions import BotoCoreError, ClientError
    fs = s3()
    try:
        if fs.isfile(spec):
            return [spec]
        return sorted(f"s3://{p}" for p in fs.find(spec))
    except (ClientError, BotoCoreError, OSError, PermissionError) as e:
        raise SourceError(f"{spec}: cannot be listed ({type(e).__name__}: {e}); check the DVC remote's endpoint "
                          "and credentials (`dvc remote modify --local storage access_key_id ...`)") from e


def _open(uri: str):
    if uri.startswith("s3://"):
        from botocore.exceptions import BotoCoreError, ClientError
        try:
            return s3().open(uri, "rb")
        except (ClientError, BotoCoreError, OSError, PermissionError) as e:
            raise SourceError(f"{uri}: cannot be read ({type(e).__name__}: {e})") from e
    try:
        return open(uri, "rb")
    except OSError as e:
        raise SourceError(f"{uri}: cannot be read ({e.strerror or e})") from e


def records(uri: str, counts: pubmed_xml.Counts, kind: str | None = None) -> Iterator[Record]:
    """The records of one input, in order (its kind from its name, unless given: xml, parquet, jsonl); a
    file-level fault (not well formed, broken off, unreadable) raises SourceError or pubmed_xml.XMLError after
    the records before it."""
    kind = kind or ("xml" if uri.endswith((".xml", ".xml.gz")) else "parquet" if uri.endswith(".parquet")
                    else "jsonl")
    stream = _open(uri)
    try:
        if kind == "xml":
            for c in pubmed_xml.citations(uri, counts, stream):
                yield Record(c.pmid, f"{uri} PMID {c.pmid}", sections=c.sections)
        elif kind == "parquet":
            yield from _parquet(uri, stream)
        else:
            yield from _jsonl(uri, stream)
    finally:
        stream.close()


def _jsonl(uri: str, stream) -> Iterator[Record]:
    """JSON Lines read as bytes and decoded line by line, so one undecodable line is named and the others kept;
    lines end at \\n only (JSON strings may hold U+2028, where str.splitlines would cut); a byte-order mark is
    dropped. A line is {"id": ..., "text": "..."} or a JSON string."""
    for number, raw in enumerate(stream, 1):
        where = f"{uri}:{number}"
        if number == 1:
            raw = raw.removeprefix(b"\xef\xbb\xbf")
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            yield Record(number, where, error=f"not UTF-8 (byte {raw[e.start]:#04x} at column {e.start + 1}); "
                                              "re-encode the line as UTF-8", line=number)
            continue
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except (ValueError, RecursionError) as e:
            yield Record(number, where, error=f"not JSON ({getattr(e, 'msg', 'nested too deeply')})", line=number)
            continue
        item = {"text": item} if isinstance(item, str) else item
        if not isinstance(item, dict) or not isinstance(item.get("text"), str):
            yield Record(number, where, error='expected {"id": ..., "text": "..."}', line=number)
            continue
        yield Record(item.get("id", number), where, text=item["text"], line=number)


def _parquet(uri: str, stream) -> Iterator[Record]:
    import pyarrow as pa
    import pyarrow.parquet as pq
    try:
        parquet = pq.ParquetFile(stream)
        if "text" not in parquet.schema_arrow.names:
            raise SourceError(f"{uri}: no 'text' column (found {parquet.schema_arrow.names}); expected id, text")
        has_id = "id" in parquet.schema_arrow.names
        row = 0
        for batch in parquet.iter_batches(columns=["id", "text"] if has_id else ["text"], batch_size=1024):
            for values in batch.to_pylist():
                row += 1
                text, rid = values["text"], str(values["id"]) if has_id else str(row)
                if not isinstance(text, str):
                    yield Record(rid, f"{uri} row {row}", error="text is not a string")
                else:
                    yield Record(rid, f"{uri} row {row}", text=text)
    except (OSError, pa.ArrowException) as e:
        raise SourceError(f"{uri}: cannot be read as Parquet ({' '.join(str(e).split())[:200]})") from e
