"""Data parallel: the process group under torchrun / accelerate launch, owned from start to teardown, and which
process this is."""
from __future__ import annotations

import contextlib
import os
from typing import Iterator

import torch
import torch.distributed as dist


@contextlib.contextmanager
def process_group() -> Iterator[tuple[int, int]]:
    """(rank, world_size) for the block. Under torchrun / accelerate launch (WORLD_SIZE > 1) the process group is
    started here and torn down here, however the block ends: the one owner of it."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size == 1 or dist.is_initialized():
        yield world()
        return
    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    try:
        yield world()
    finally:
        dist.destroy_process_group()


def world() -> tuple[int, int]:
    """(rank, world_size) of this process: (0, 1) outside a process group."""
    if dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise RuntimeError("launched by torchrun (WORLD_SIZE > 1) but outside training.process_group()")
    return 0, 1
