"""Atomic writes (a crash never leaves half a file), checked output paths, and how a stage ends on bad input."""
from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator

ROOT = Path(__file__).resolve().parent.parent


class OutputError(ValueError):
    """A path the user named for output that cannot or must not be written; the message says what to do."""


def _holds_cwd(path: Path) -> bool:
    """`path` is the current folder or one above it (`.`, `..`, `/`, the project itself)."""
    here = Path.cwd().resolve()
    return path.resolve() in (here, *here.parents)


@contextlib.contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """Yield a temporary sibling of `target` (file or folder); rename it over `target` only on success.

    Everything is made inside one temporary folder of its own beside `target`, and only that folder is ever
    removed: an old folder being replaced is first moved into it. A file never replaces a folder, and the
    current folder or one above it (`.`, `..`, `/`) is never a target."""
    target = Path(target)
    if target.name in ("", ".", "..") or _holds_cwd(target):
        raise OutputError(f"{target}: refusing to write over the current folder or one above it; name a file")
    target.parent.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    tmp = workdir / target.name
    try:
        yield tmp
        if target.is_dir() and not target.is_symlink():
            if not tmp.is_dir():
                raise OutputError(f"{target} is a folder; refusing to replace it with a file")
            target.rename(workdir / ".replaced")  # removed with workdir, once the new folder is in place
            tmp.rename(target)
        else:
            os.replace(tmp, target)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def check_output(path: str | Path, inputs: tuple[str | Path, ...] = (), option: str = "-o") -> Path:
    """A user's output path (`-o`), checked before any work starts: a file, not a folder (`.`, `/`, an existing
    folder), not one of `inputs`, and writable (a file can be made in its folder; an existing file can be
    replaced). Write it with atomic_path. Used by predict, label and every future `-o`."""
    p = Path(path)
    if p.name in ("", ".", "..") or p.is_dir() or _holds_cwd(p):
        raise OutputError(f"{option} {path} names a folder; give a file path, e.g. "
                          f"{Path(path) / 'labelled.jsonl'}")
    for source in inputs:
        if p.exists() and os.path.exists(source) and os.path.samefile(p, source):
            raise OutputError(f"{option} {path} is the input file; writing it would destroy the input: "
                              "choose another name")
    folder = p.absolute().parent
    while not folder.exists():  # atomic_path makes the missing folders; the first existing one must take them
        folder = folder.parent
    try:
        if not folder.is_dir():
            raise NotADirectoryError(errno.ENOTDIR, "not a folder", str(folder))
        fd, probe = tempfile.mkstemp(prefix=f".{p.name}.", dir=folder)
        os.close(fd)
        os.unlink(probe)
        if p.exists() and not os.access(p, os.W_OK):  # a read-only or immutable file
            raise PermissionError(errno.EPERM, "the file is read-only or immutable", str(p))
    except OSError as e:
        raise OutputError(f"{option} {path}: cannot be written ({e.strerror or e}"
                          f"{f': {e.filename}' if e.filename else ''}); choose a path you can write to") from e
    return p


def write_parquet(table, path: str | Path) -> None:
    """A Parquet file written atomically, with a CRC of every page, so that changed bytes are found on read
    (read_parquet) instead of read as other rows."""
    import pyarrow.parquet as pq
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, write_page_checksum=True)


def read_parquet(path: str | Path, columns: list[str] | None = None):
    """A Parquet file with its page checksums verified (files written without them are read as they are)."""
    import pyarrow.parquet as pq
    return pq.read_table(path, columns=columns, page_checksum_verification=True)


def digest(parts) -> str:
    """The SHA-256 of `parts` in order, hex: bytes as they are, a Path by its content (read in 1 MiB blocks). What
    decides whether two things are the same: a checkpoint's params and data, a model folder's files."""
    import hashlib
    h = hashlib.sha256()
    for part in parts:
        if isinstance(part, Path):
            with open(part, "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    h.update(block)
        else:
            h.update(part)
    return h.hexdigest()


def write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: str | Path, data: Any) -> None:
    write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def read_json(path: str | Path) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def run_stage(main) -> None:
    """Run a stage's main(); expected failures print one clear message and exit 2 (no traceback).

    A full disk is one of them: outputs are renamed into place only when complete, so whatever an earlier
    run produced is still there."""
    import sys
    try:
        main()
    except (ValueError, FileNotFoundError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt as e:  # Ctrl-C, or SIGTERM (lifetime.Terminated): what was opened is closed
        print(f"stopped: {e or 'interrupted'}; the outputs of earlier runs are untouched", file=sys.stderr)
        sys.exit(130)
    except OSError as e:
        if e.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        where = f" writing {e.filename}" if e.filename else ""
        print(f"error: no space left on the device{where} ({e.strerror or e}). Free some space (or point "
              "TMPDIR / HF_HOME elsewhere) and run the stage again; the outputs of earlier runs are untouched.",
              file=sys.stderr)
        sys.exit(2)
