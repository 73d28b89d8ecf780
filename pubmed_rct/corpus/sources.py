"""Abstracts and their sentences: read PubMed RCT (the hub's dataset, a local copy of it, or the text format),
validated, as rows for the pipeline's store (store.py).

A split is a list of rows, one per sentence, in abstract order:
abstract_id (str), sentence_id (0-based position), num_sentences, label (str), text (str).
"""
from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.error
import urllib.request
from collections import defaultdict
from pathlib import Path
from typing import Iterable

import pyarrow as pa

from ..text import normalize, numbers
from .store import COLUMNS, DataError

SPLITS = ("train", "validation", "test")
# File names of the original text format (Dernoncourt & Lee 2017) for each split, first match wins.
TEXT_FILES = {"train": ("train.txt",), "validation": ("dev.txt", "validation.txt", "val.txt"), "test": ("test.txt",)}
HUB_DATA_FILES = (".jsonl", ".json", ".parquet", ".csv")
HUB_HINT = ("to run offline, point data.source at a local copy: the dataset repo as `hf download armanc/pubmed-rct20k "
            "--repo-type dataset --local-dir DIR` leaves it, or a folder with train.txt, dev.txt, test.txt "
            "(`dvc exp run -S data.source=/abs/path/to/DIR`; README: Offline)")


def parse_text(lines: Iterable[str], name: str) -> list[dict]:
    """Parse the `###id` / `LABEL<TAB>sentence` / blank-line format; `name` is used in error messages."""
    rows: list[dict] = []
    current: list[dict] | None = None
    current_id, start_line = "", 0

    def close() -> None:
        if current is None:
            return
        if not current:
            raise DataError(f"{name}:{start_line}: abstract '{current_id}' has no sentences")
        for row in current:
            row["num_sentences"] = len(current)
        rows.extend(current)

    seen: set[str] = set()
    for number, line in enumerate(lines, 1):
        line = line.rstrip("\r\n")
        if line.startswith("###"):
            close()
            current_id, start_line, current = line[3:].strip(), number, []
            if not current_id:
                raise DataError(f"{name}:{number}: '###' must be followed by an abstract id")
            if current_id in seen:
                raise DataError(f"{name}:{number}: abstract id '{current_id}' appears twice")
            seen.add(current_id)
        elif not line.strip():
            continue
        elif current is None:
            raise DataError(f"{name}:{number}: sentence before the first '###<abstract id>' line")
        else:
            label, tab, text = line.partition("\t")
            if not tab:
                raise DataError(f"{name}:{number}: expected 'LABEL<TAB>sentence', found no tab: {line[:60]!r}")
            if not label.strip():
                raise DataError(f"{name}:{number}: empty label")
            if not text.strip():
                raise DataError(f"{name}:{number}: empty sentence for label '{label}'")
            current.append({"abstract_id": current_id, "sentence_id": len(current),
                            "label": label.strip(), "text": text.strip()})
    close()
    if not rows:
        raise DataError(f"{name}: no abstracts found (expected '###<id>' lines followed by 'LABEL<TAB>sentence')")
    return rows


def read_text_file(path: str | Path) -> list[dict]:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")  # a byte-order mark (as many Windows editors write) is no text
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        column = e.start - data.rfind(b"\n", 0, e.start) - 1
        raise DataError(f"{path}:{line}: not valid UTF-8 ({normalize.utf8_fault(e, column - e.start, 'column')}); "
                        "re-encode the file as UTF-8") from e
    return parse_text(text.splitlines(), str(path))


def _find_split_file(folder: Path, split: str) -> Path:
    for name in TEXT_FILES[split]:
        if (folder / name).is_file():
            return folder / name
    raise DataError(f"{folder}: no {' or '.join(TEXT_FILES[split])} for the {split} split")


def read_text_source(source: str) -> tuple[dict[str, list[dict]], dict]:
    """Read the three splits from a local folder or a URL base holding train/dev/test.txt."""
    if source.startswith(("http://", "https://")):
        with tempfile.TemporaryDirectory() as tmp:
            for split in SPLITS:
                _download(source.rstrip("/"), TEXT_FILES[split], Path(tmp))
            return read_text_source(tmp)[0], {"source": source, "format": "text"}
    folder = Path(source)
    files = {split: _find_split_file(folder, split) for split in SPLITS}
    splits = {split: read_text_file(path) for split, path in files.items()}
    meta = {"source": source, "format": "text",
            "sha256": {split: hashlib.sha256(p.read_bytes()).hexdigest() for split, p in files.items()}}
    return splits, meta


def _download(base: str, names: tuple[str, ...], dest: Path) -> None:
    errors = []
    for name in names:
        try:
            with urllib.request.urlopen(f"{base}/{name}", timeout=60) as r:
                (dest / name).write_bytes(r.read())
            return
        except (urllib.error.URLError, OSError) as e:
            errors.append(f"{base}/{name}: {e}")
    raise DataError("could not download any of: " + "; ".join(errors))


def read_hub_dataset(path: str, revision: str | None = None) -> tuple[dict[str, list[dict]], dict]:
    """A dataset repo of sentence rows (abstract_id, sentence_id, label, text), from the Hugging Face hub
    (`path` an id such as armanc/pubmed-rct20k, at `revision`) or from a local copy of such a repo (a folder
    of *.jsonl / *.parquet / *.csv): both through `datasets`, as `load_dataset` reads them."""
    import datasets
    from datasets.data_files import EmptyDatasetError
    from datasets.exceptions import DataFilesNotFoundError, DatasetGenerationError, DatasetNotFoundError
    local = os.path.isdir(path)
    where = f"data.source '{path}'" + ("" if local or not revision else f" at data.revision '{revision}'")
    try:
        builder = datasets.load_dataset_builder(path, revision=None if local else revision)
        builder.download_and_prepare()
        ds = builder.as_dataset()
    except ConnectionError as e:  # datasets' own word for "no answer from the hub" (after its retries)
        raise DataError(f"{where}: the Hugging Face hub could not be reached ({e}); {HUB_HINT}") from e
    except DatasetNotFoundError as e:  # unknown id, private or gated repo, unknown revision
        hint = ("check data.revision (a commit of that dataset, or `main` for the newest)"
                if "Revision" in str(e) else "check the id on https://huggingface.co/datasets (a private or "
                "gated dataset also needs `hf auth login`)")
        raise DataError(f"{where}: {str(e).rstrip('.')}; {hint}") from e
    except (DataFilesNotFoundError, EmptyDatasetError) as e:
        raise DataError(f"{where}: {e}; expected train/dev/test data files (*.jsonl, *.parquet or *.csv)") from e
    except DatasetGenerationError as e:  # a file that does not parse, or splits with different columns
        cause = str(e.__cause__ or e).splitlines()[0][:300]
        raise DataError(f"{where}: the data files could not be read as one table ({cause}); each split needs the "
                        "columns abstract_id, sentence_id, label, text") from e
    splits = {}
    for split in SPLITS:
        name = split if split in ds else {"validation": "dev"}.get(split, split)
        if name not in ds:
            raise DataError(f"{where}: no '{split}' split (found {sorted(ds)}); the data files must be named "
                            "train.*, dev.* or validation.*, test.*")
        part = ds[name]
        label_col = "labels" if "labels" in part.column_names and "label" not in part.column_names else "label"
        for col in ("abstract_id", "sentence_id", label_col, "text"):
            if col not in part.column_names:
                raise DataError(f"{where} split {name}: missing column '{col}' (found {part.column_names}); "
                                "expected one row per sentence: abstract_id, sentence_id, label, text")
        feature = part.features[label_col]
        names = getattr(feature, "names", None)
        cols = part.select_columns(["abstract_id", "sentence_id", label_col, "text"]).to_dict()  # via Arrow:
        records = ({"abstract_id": str(a), "sentence_id": int(s),  # 176,642 rows: 0.06 s, not 8.4 s row by row
                    "label": names[l] if names else str(l), "text": t}
                   for a, s, l, t in zip(cols["abstract_id"], cols["sentence_id"], cols[label_col], cols["text"]))
        splits[split] = group_rows(records, f"{path}[{name}]")
    meta = {"source": path, "format": "hub-folder" if local else "hub"}
    if not local:  # the commit actually read: the pinned one, or what `main` pointed at today
        meta.update({"revision": revision, "commit": builder.hash})
    return splits, meta


def group_rows(records: Iterable[dict], name: str) -> list[dict]:
    """Order sentence records by abstract (first appearance) and sentence_id; renumber positions 0..n-1.

    Gaps in sentence_id are closed (the order is kept); a repeated sentence_id is an error.
    """
    by_abstract: dict[str, list[dict]] = defaultdict(list)
    for i, r in enumerate(records):
        if not str(r["text"]).strip():
            raise DataError(f"{name} row {i}: empty text (abstract {r['abstract_id']}, sentence {r['sentence_id']})")
        if not str(r["label"]).strip():
            raise DataError(f"{name} row {i}: empty label (abstract {r['abstract_id']}, sentence {r['sentence_id']})")
        by_abstract[r["abstract_id"]].append(r)
    rows = []
    for abstract_id, sentences in by_abstract.items():
        sentences.sort(key=lambda r: r["sentence_id"])
        ids = [r["sentence_id"] for r in sentences]
        if len(set(ids)) != len(ids):
            raise DataError(f"{name}: abstract {abstract_id} repeats a sentence_id ({ids})")
        for position, r in enumerate(sentences):
            rows.append({"abstract_id": abstract_id, "sentence_id": position, "num_sentences": len(sentences),
                         "label": str(r["label"]).strip(), "text": str(r["text"]).strip()})
    return rows


def read_source(source: str, revision: str | None = None) -> tuple[dict[str, list[dict]], dict]:
    """The three splits and where they came from: a URL or a folder with train.txt is the text format; a
    folder of *.jsonl / *.parquet / *.csv is a local copy of a hub dataset repo; anything else is a hub id.
    Records which form the numbers are in (digits, or every number replaced by `@`)."""
    if source.startswith(("http://", "https://")):
        splits, meta = read_text_source(source)
    elif os.path.isdir(source):
        folder = Path(source)
        if any((folder / name).is_file() for name in TEXT_FILES["train"]):
            splits, meta = read_text_source(source)
        elif any(p.suffix in HUB_DATA_FILES for p in folder.rglob("*") if not _hidden(p, folder)):
            splits, meta = read_hub_dataset(source)
        else:
            raise DataError(f"data.source '{source}': this folder holds neither train.txt, dev.txt, test.txt (the "
                            f"text format) nor {', '.join('*' + e for e in HUB_DATA_FILES)} files (a copy of a hub "
                            "dataset repo)")
    elif source.startswith((".", "/", "~")):
        raise DataError(f"data.source '{source}': no such folder (expected train.txt, dev.txt, test.txt in it, "
                        "or a copy of a hub dataset repo)")
    else:
        splits, meta = read_hub_dataset(source, revision)
    for rows in splits.values():  # the same Unicode clean-up as raw text gets at prediction time
        for r in rows:
            r["text"] = normalize.clean(r["text"])
    meta["number_form"] = numbers.detect(r["text"] for rows in splits.values() for r in rows)
    return splits, meta


def _hidden(path: Path, root: Path) -> bool:
    """Inside a hidden folder (e.g. the .cache/ that `hf download --local-dir` leaves)."""
    return any(part.startswith(".") for part in path.relative_to(root).parts)


def abstracts_of(rows: list[dict]) -> list[list[int]]:
    """Row indices grouped by abstract, in order."""
    groups: list[list[int]] = []
    last = None
    for i, r in enumerate(rows):
        if r["abstract_id"] != last:
            groups.append([])
            last = r["abstract_id"]
        groups[-1].append(i)
    return groups
