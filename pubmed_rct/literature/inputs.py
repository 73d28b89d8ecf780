"""Where the label job's inputs and output live: local paths, globs and folders, or `s3://` prefixes on the DVC
remote's S3 store, each input named once, and opened for reading (or writing, for the output) by whoever
needs it: the driver lists, the executors read and write.

S3 goes through s3fs (the filesystem DVC itself uses), with the endpoint and credentials DVC takes: the
`storage` remote's `endpointurl`, `access_key_id`, `secret_access_key` in `.dvc/config` and
`.dvc/config.local`, else the AWS environment (AWS_ACCESS_KEY_ID, AWS_ENDPOINT_URL...). Spark's own S3
client (s3a) would need the hadoop-aws jars, which the pyspark wheel does not carry; s3fs runs in every
Python worker as it is.
"""
from __future__ import annotations

import configparser
import glob
import os
from pathlib import Path

SUFFIXES = (".xml", ".xml.gz", ".jsonl", ".json", ".parquet")


class SourceError(ValueError):
    """An input that cannot be found or read at all; the message names it and what to do."""


def is_s3(uri: str) -> bool:
    return str(uri).startswith("s3://")


def s3_options(root: Path = Path(".")) -> dict:
    """The DVC remote's S3 endpoint and credentials, as s3fs.S3FileSystem's keyword arguments."""
    config = configparser.ConfigParser()
    config.read([root / ".dvc" / "config", root / ".dvc" / "config.local"])
    # configobj (DVC's reader) writes ['remote "storage"']; configparser keeps the quotes in the name
    section = next((s for s in config.sections() if s.strip("'").startswith("remote ")), None)
    options = {}
    if section is not None:
        remote = config[section]
        if remote.get("access_key_id"):
            options.update(key=remote["access_key_id"], secret=remote.get("secret_access_key"))
        if remote.get("endpointurl"):
            options["client_kwargs"] = {"endpoint_url": remote["endpointurl"]}
    if "client_kwargs" not in options and os.environ.get("AWS_ENDPOINT_URL"):
        options["client_kwargs"] = {"endpoint_url": os.environ["AWS_ENDPOINT_URL"]}
    return options


_filesystems: dict[str, object] = {}


def s3(options: dict | None = None):
    """An s3fs filesystem on the DVC remote's store (`options` as s3_options gives them; read here if None).
    Listings are not cached: a key deleted after listing is found missing when it is opened."""
    import json
    import s3fs
    options = s3_options() if options is None else options
    key = json.dumps(options, sort_keys=True)
    if key not in _filesystems:
        # Checksums only where S3 requires them: a ranged read (a unit starting mid-file) of a store that sends
        # the whole object's checksum (rclone, MinIO...) fails botocore's check otherwise.
        checks = {"response_checksum_validation": "when_required", "request_checksum_calculation": "when_required"}
        _filesystems[key] = s3fs.S3FileSystem(**options, skip_instance_cache=True, use_listings_cache=False,
                                              config_kwargs=checks)
    return _filesystems[key]


def s3_errors() -> tuple[type[BaseException], ...]:
    from botocore.exceptions import BotoCoreError, ClientError
    return ClientError, BotoCoreError, OSError, PermissionError


def identity(spec: str) -> str:
    """One name per input: a local path resolved (`f`, `./f` and `$PWD/f` are one file), an S3 object as
    s3://bucket/key."""
    if is_s3(spec):
        return "s3://" + spec[5:].lstrip("/")
    return os.path.realpath(spec)


def _supported(name: str) -> bool:
    return name.endswith(SUFFIXES)


def under(path: str, folder: str | None) -> bool:
    """`path` is `folder` or inside it (both as identity gives them)."""
    if folder is None:
        return False
    folder = folder.rstrip("/")
    return path == folder or path.startswith(folder + "/")


def expand(specs: list[str], out: str | None = None, options: dict | None = None) -> list[str]:
    """Every input file named by `specs` (paths, globs, folders, s3:// prefixes or objects), sorted, each once by
    its identity, and none inside the output `out` (its own parts and manifest are never inputs). A spec that
    names nothing is a SourceError."""
    found: list[str] = []
    seen: set[str] = set()
    for spec in specs:
        if is_s3(spec):
            names = _s3_listing(spec, options)
        elif os.path.isdir(spec):
            names = sorted(str(p) for p in Path(spec).rglob("*") if p.is_file() and _supported(p.name))
        else:
            names = sorted(glob.glob(spec, recursive=True)) or ([spec] if os.path.isfile(spec) else [])
        names = [identity(n) for n in names if _supported(n)]
        names = [n for n in names if not under(n, out)]
        if not names:
            raise SourceError(f"{spec}: no input found (PubMed XML .xml/.xml.gz, JSON Lines .jsonl, or .parquet)"
                              + (f" outside --out {out}" if out else ""))
        for n in names:
            if n not in seen:
                seen.add(n)
                found.append(n)
    return found


def _s3_listing(spec: str, options: dict | None) -> list[str]:
    fs = s3(options)
    try:
        if fs.isfile(spec):
            return [spec]
        return sorted(f"s3://{p}" for p in fs.find(spec))
    except s3_errors() as e:
        raise SourceError(f"{spec}: cannot be listed ({type(e).__name__}: {e}); check the DVC remote's endpoint "
                          "and credentials (`dvc remote modify --local storage access_key_id ...`)") from e


def open_input(uri: str, options: dict | None = None):
    """The input's bytes (a file object that can seek: S3 seeks with range requests)."""
    if is_s3(uri):
        try:
            return s3(options).open(uri, "rb")
        except s3_errors() as e:
            raise SourceError(f"{uri}: cannot be read ({type(e).__name__}: {e}); it was listed but is gone or "
                              "unreadable now") from e
    try:
        return open(uri, "rb")
    except OSError as e:
        raise SourceError(f"{uri}: cannot be read ({e.strerror or e})") from e


def size(uri: str, options: dict | None = None) -> int | None:
    """The input's size in bytes (None if it cannot be read): a changed size means a changed file."""
    try:
        return int(s3(options).size(uri)) if is_s3(uri) else os.path.getsize(uri)
    except (*s3_errors(), FileNotFoundError):
        return None
