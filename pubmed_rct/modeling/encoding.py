"""Turn sentences into model inputs, alone or with their abstract as context.

An example is one model input: `input_ids`, the token `positions` whose outputs classify a sentence,
the `labels` at those positions (-100: context only, not in the loss) and the prepared `rows` they belong to.

Context modes:
- none:     [CLS] sentence [SEP], classified at [CLS] (AutoModelForSequenceClassification): the baseline's model.
- abstract: [CLS] s1 [SEP] s2 [SEP] ... sn [SEP], each sentence classified at its own [SEP]
            (AutoModelForTokenClassification; Cohan et al. 2019). Abstracts longer than
            `context_max_length` tokens are cut into consecutive chunks at sentence boundaries.
"""
from __future__ import annotations

import contextlib
import gc
import itertools
from typing import Iterator, Sequence

import numpy as np
import pyarrow as pa

from ..choices import CONTEXTS

IGNORE = -100


def check_context(context: str) -> str:
    if context not in CONTEXTS:
        raise ValueError(f"params.yaml context: '{context}' is not one of {CONTEXTS}")
    return context


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Millions of small id lists and no reference cycles: the cyclic collector would only rescan them
    (4.2 s -> 1.0 s for 220,000 sentences' inputs, measured)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def tokenize_sentences(tokenizer, texts: Sequence[str], batch_size: int = 20_000) -> list[list[int]]:
    """Word-piece ids of each sentence without special tokens (fast tokenizer, in large batches).

    Calls the Rust tokenizer directly, without offsets or Python-side BatchEncoding (about 1.5x faster
    than `tokenizer(texts)`, same ids); a slow tokenizer takes the ordinary call.
    """
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:  # a tokenizer.json may carry truncation/padding (MiniLM's: 128); transformers'
        if backend.truncation is not None:  # own call switches them off the same way, in place
            backend.no_truncation()
        if backend.padding is not None:
            backend.no_padding()
    encode = getattr(backend, "encode_batch_fast", None) or getattr(backend, "encode_batch", None)
    ids: list[list[int]] = []
    with gc_paused():
        for start in range(0, len(texts), batch_size):
            chunk = list(texts[start:start + batch_size])
            if encode is not None:
                ids.extend(e.ids for e in encode(chunk, add_special_tokens=False))
            else:
                ids.extend(tokenizer(chunk, add_special_tokens=False, return_attention_mask=False,
                                     return_token_type_ids=False)["input_ids"])
    return ids


def special_ids(tokenizer) -> tuple[int, int]:
    cls, sep = tokenizer.cls_token_id, tokenizer.sep_token_id
    if cls is None or sep is None:
        raise ValueError(f"tokenizer {tokenizer.name_or_path!r} has no [CLS]/[SEP] tokens; use a BERT-style model")
    return cls, sep


def build_examples(token_ids: list[list[int]], abstracts: list[list[int]], context: str, max_length: int,
                   context_max_length: int, cls: int, sep: int,
                   labels: Sequence[int] | None = None, in_loss: Sequence[bool] | None = None) -> dict[str, list]:
    """Examples for sentences `token_ids` grouped into `abstracts` (lists of row indices, in order).

    Each sentence keeps at most max_length - 2 word pieces. In context none, rows with in_loss False are left
    out; in context abstract they stay as context with label -100.
    """
    check_context(context)
    if context == "abstract" and max_length > context_max_length:
        raise ValueError(f"params.yaml: max_length {max_length} exceeds context_max_length {context_max_length}")
    cap = max_length - 2
    out: dict[str, list] = {"input_ids": [], "positions": [], "labels": [], "rows": []}

    def label_of(row: int) -> int:
        if labels is None or (in_loss is not None and not in_loss[row]):
            return IGNORE
        return labels[row]

    with gc_paused():
        for abstract in abstracts:
            if context == "none":
                for row in abstract:
                    if in_loss is None or in_loss[row]:
                        _append(out, [cls, *token_ids[row][:cap], sep], [0], [label_of(row)], [row])
                continue
            ids, positions, chunk_labels, rows = [cls], [], [], []
            for row in abstract:
                piece = token_ids[row][:cap]
                if rows and len(ids) + len(piece) + 1 > context_max_length:
                    _append(out, ids, positions, chunk_labels, rows)
                    ids, positions, chunk_labels, rows = [cls], [], [], []
                ids.extend(piece)
                ids.append(sep)
                positions.append(len(ids) - 1)
                chunk_labels.append(label_of(row))
                rows.append(row)
            if rows:
                _append(out, ids, positions, chunk_labels, rows)
    return out


def examples_table(examples: dict[str, list[list[int]]]) -> pa.Table:
    """The examples as an Arrow table of int32 lists, built from flat arrays (3x faster than pa.array)."""
    columns = {}
    with gc_paused():
        for name, lists in examples.items():
            offsets = np.zeros(len(lists) + 1, dtype=np.int64)
            np.cumsum(np.fromiter(map(len, lists), dtype=np.int64, count=len(lists)), out=offsets[1:])
            flat = np.fromiter(itertools.chain.from_iterable(lists), dtype=np.int32, count=int(offsets[-1]))
            small = offsets[-1] < 2 ** 31  # int32 offsets unless a column passes 2^31 ids
            kind = pa.ListArray if small else pa.LargeListArray
            columns[name] = kind.from_arrays(pa.array(offsets.astype(np.int32) if small else offsets), pa.array(flat))
    return pa.table(columns)


def _append(out: dict[str, list], ids, positions, labels, rows) -> None:
    out["input_ids"].append(ids)
    out["positions"].append(positions)
    out["labels"].append(labels)
    out["rows"].append(rows)


def truncation_stats(token_ids: list[list[int]], max_length: int) -> dict[str, float]:
    lengths = [len(t) for t in token_ids]
    n = max(len(lengths), 1)
    return {"sentences": len(lengths),
            "truncated_share": sum(l > max_length - 2 for l in lengths) / n,
            "mean_tokens": sum(min(l, max_length - 2) + 2 for l in lengths) / n}


EXAMPLE_COLUMNS = ("input_ids", "positions", "labels", "rows")  # a tokenized split (stages/tokenization.py)


def examples_from_table(table) -> list[dict]:
    """Rows of a tokenized Parquet table as example dicts."""
    cols = {name: table.column(name).to_pylist() for name in EXAMPLE_COLUMNS}
    return [dict(zip(cols, values)) for values in zip(*cols.values())]
