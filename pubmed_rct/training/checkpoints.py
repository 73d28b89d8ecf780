"""Checkpoints an interrupted training resumes from: weights, optimizer, schedule, counters, every rank's random
state and what the stage carries along (its MLflow run, the curve), written whole or not at all; one that
cannot be read is named and training starts over."""
from __future__ import annotations

import sys
from pathlib import Path

import torch
import torch.distributed as dist

from ..io import atomic_path


def load(path: Path) -> dict | None:
    """The checkpoint at `path`, or None: none there, or one that cannot be read (a truncated file), which is
    named, removed and replaced by a start from scratch."""
    if not path.is_file():
        return None
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:  # noqa: BLE001 - torch raises RuntimeError, EOFError, UnpicklingError... for a bad file
        reason = " ".join(str(e).split())[:200]
        print(f"WARNING: checkpoint {path} cannot be read ({type(e).__name__}: {reason}); training from the "
              "start instead", file=sys.stderr, flush=True)
        path.unlink(missing_ok=True)
        return None


def restore(saved: dict, model, optimizer, scheduler, rank: int, world_size: int, device: torch.device,
            carry: dict | None) -> dict:
    """Put a checkpoint back: weights, AdamW, schedule, every rank's random state and the caller's `carry`;
    returns the training loop's counters (step, loss_sum, samples, runtime)."""
    model.load_state_dict(saved["model"])
    optimizer.load_state_dict(saved["optimizer"])
    for group in optimizer.param_groups:  # a run with CUDA graphs saves lr as a tensor; make_step decides anew
        group["lr"], group["capturable"] = float(group["lr"]), False
    scheduler.load_state_dict(saved["scheduler"])
    restore_rng(saved["rng"], rank, world_size, device)
    if carry is not None:
        carry.update(saved.get("carry", {}))
    return saved["state"]


def rng_states(device: torch.device, world_size: int) -> list[dict]:
    """The random states training draws from (dropout): the CPU generator and, on a GPU, the CUDA generator of
    this process's device; one entry per rank, gathered to every rank (only rank 0 saves them)."""
    mine = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        mine["cuda"] = torch.cuda.get_rng_state(device)
    if world_size == 1:
        return [mine]
    states: list = [None] * world_size
    dist.all_gather_object(states, mine)
    return states


def restore_rng(saved, rank: int, world_size: int, device: torch.device) -> None:
    """Put this rank's generators back where they were at the checkpoint, so a resumed run draws the same
    dropout masks as an uninterrupted one. A checkpoint of another world size cannot be matched: said once."""
    if torch.is_tensor(saved):  # checkpoints written before per-rank states: rank 0's CPU state only
        saved = [{"cpu": saved}]
    if len(saved) != world_size:
        if rank == 0:
            print(f"checkpoint written by {len(saved)} process(es), resumed by {world_size}: weights and schedule "
                  "resume exactly, dropout draws do not", flush=True)
        return
    torch.set_rng_state(saved[rank]["cpu"])
    if device.type == "cuda" and "cuda" in saved[rank]:
        torch.cuda.set_rng_state(saved[rank]["cuda"], device)


def save(path: Path, model, optimizer, scheduler, state: dict, rng: list[dict], carry: dict | None = None) -> None:
    """Write the checkpoint whole or not at all (io.atomic_path)."""
    with atomic_path(path) as tmp:
        torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(), "state": dict(state), "rng": rng,
                    "carry": {k: list(v) if isinstance(v, list) else v for k, v in (carry or {}).items()}}, tmp)


def discard(folder: Path) -> None:
    """The checkpoint folder of a finished training, removed once its model and outputs are safely written: a
    kill before that point resumes from the final checkpoint instead of training again."""
    import shutil
    shutil.rmtree(folder, ignore_errors=True)
