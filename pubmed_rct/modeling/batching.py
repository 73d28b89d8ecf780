"""Batches: examples packed up to a budget of labelled sentences, cut where padding would cost too much on CPU,
padded to a multiple of a few shapes and moved to the device. Training and inference batch the same way."""
from __future__ import annotations

import torch


def padded_width(examples: list[dict], multiple: int) -> int:
    """The batch's longest input, rounded up to a multiple of `multiple`: the batch's shape on the device."""
    return -(-max(len(e["input_ids"]) for e in examples) // multiple) * multiple


def collate(examples: list[dict], pad_id: int, multiple: int, device: torch.device | None = None) -> dict:
    """Pad a batch to the next multiple of `multiple` (a few fixed shapes), flatten classified positions."""
    width = padded_width(examples, multiple)
    ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(examples), width), dtype=torch.long)
    pos_batch, pos_token, labels = [], [], []
    for i, e in enumerate(examples):
        n = len(e["input_ids"])
        ids[i, :n] = torch.as_tensor(e["input_ids"])
        mask[i, :n] = 1
        pos_batch.extend([i] * len(e["positions"]))
        pos_token.extend(e["positions"])
        labels.extend(e["labels"])
    batch = {"input_ids": ids, "attention_mask": mask, "pos_batch": torch.as_tensor(pos_batch),
             "pos_token": torch.as_tensor(pos_token), "labels": torch.as_tensor(labels)}
    if device is not None and device.type == "cuda":
        batch = {k: v.pin_memory().to(device, non_blocking=True) for k, v in batch.items()}
    elif device is not None:
        batch = {k: v.to(device) for k, v in batch.items()}
    return batch


CPU_WIDTH = 1.25  # MiniLM int8, one 10-sentence abstract: 40 ms padded to the longest, 28 ms cut at 1.25


def cut_wide(batch: list[int], lengths: list[int], ratio: float) -> list[list[int]]:
    """A batch sorted by length, cut wherever an item is longer than `ratio` times the first of its part."""
    parts: list[list[int]] = []
    for i in batch:
        if parts and lengths[i] <= ratio * lengths[parts[-1][0]]:
            parts[-1].append(i)
        else:
            parts.append([i])
    return parts


def pack(order: list[int], sizes: list[int], budget: int, min_items: int = 1) -> list[list[int]]:
    """Consecutive items of `order` in batches of at most `budget` weight (labelled sentences), each with
    at least `min_items` items (one past the budget if need be); a tail too small joins the batch before."""
    batches: list[list[int]] = []
    batch: list[int] = []
    filled = 0
    for i in order:
        if batch and filled + sizes[i] > budget and len(batch) >= min_items:
            batches.append(batch)
            batch, filled = [], 0
        batch.append(i)
        filled += sizes[i]
    if batches and len(batch) < min_items:
        batches[-1].extend(batch)
    elif batch:
        batches.append(batch)
    return batches
