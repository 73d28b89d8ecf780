"""Atomic writes and params: a crash never leaves half a file, and each stage reads only its keys."""
from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator

import yaml

ROOT = Path(__file__).resolve().parent.parent


@contextlib.contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """Yield a temporary sibling of `target` (file or folder); rename it over `target` only on success."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent)) / target.name
    try:
        yield tmp
        if target.is_dir() and not target.is_symlink():
            old = target.with_name(f".{target.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            target.rename(old)
            tmp.rename(target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp.parent, ignore_errors=True)


def write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: str | Path, data: Any) -> None:
    write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def read_json(path: str | Path) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def load_params(path: str | Path = "params.yaml") -> dict:
    """The whole params file; stages pick their keys with `section`."""
    with open(path, encoding="utf-8") as f:
        return yaml.safe_load(f) or {}


def section(params: dict, *keys: str) -> dict:
    """The named keys of params, failing with a clear message when one is missing."""
    missing = [k for k in keys if k not in params]
    if missing:
        raise SystemExit(f"params.yaml: missing key(s) {', '.join(missing)}; see the README's params table")
    return {k: params[k] for k in keys}


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
    except OSError as e:
        if e.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        where = f" writing {e.filename}" if e.filename else ""
        print(f"error: no space left on the device{where} ({e.strerror or e}). Free some space (or point "
              "TMPDIR / HF_HOME elsewhere) and run the stage again; the outputs of earlier runs are untouched.",
              file=sys.stderr)
        sys.exit(2)
