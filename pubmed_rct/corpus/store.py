"""The pipeline's own Parquet files (data/raw, data/prepared, data/tokenized): one row per sentence, written
atomically with page checksums, read back verified; a damaged or missing file is named with the way back."""
from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from ..io import read_parquet, write_parquet

COLUMNS = ("abstract_id", "sentence_id", "num_sentences", "label", "text")


class DataError(ValueError):
    """Bad input data: the message names the file, line or field and what to do."""


def write_split(path: str | Path, rows: list[dict], extra: dict[str, list] | None = None) -> None:
    columns = {c: [r[c] for r in rows] for c in COLUMNS}
    columns.update(extra or {})
    write_parquet(pa.table(columns), path)


# The pipeline's Parquet folders and the stage that writes each: the way back from a damaged file.
WRITTEN_BY = {"raw": "download", "prepared": "prepare", "tokenized": "tokenize"}


def read_table(path: str | Path, columns: tuple[str, ...] = ()) -> pa.Table:
    """A Parquet file of the pipeline, its page checksums verified and `columns` present; a missing or damaged
    one (truncated, changed bytes in its pages or its footer) is a DataError that names it and the way back."""
    path = Path(path)
    stage = WRITTEN_BY.get(path.parent.name)
    rebuild = f"`dvc repro -f {stage}`" if stage else "rerunning the stage that writes it with `dvc repro -f`"
    way_back = f"restore it from the DVC cache with `dvc checkout {path.parent}` or rebuild it with {rebuild}"
    if not path.is_file():
        raise DataError(f"{path}: not found; run the stage that produces it (dvc repro)")
    try:
        table = read_parquet(path)
        names = table.schema.names  # decoded here: a damaged footer can hold bytes that are not UTF-8
    except (OSError, pa.ArrowException, ValueError) as e:  # ValueError: bytes changed inside a string (UTF-8)
        reason = " ".join(str(e).split())[:200]
        raise DataError(f"{path}: cannot be read as Parquet ({reason}); {way_back}") from e
    if missing := [c for c in columns if c not in names]:
        raise DataError(f"{path}: no column {', '.join(missing)} (found {', '.join(names)}): damaged or not written "
                        f"by this pipeline; {way_back}")
    return table


def read_split(path: str | Path) -> list[dict]:
    return read_table(path, COLUMNS).to_pylist()
