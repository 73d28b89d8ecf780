"""The whole training step (forward, backward, clipping, AdamW) as one CUDA graph per batch shape, on one GPU:
captured the first time a shape comes, replayed after. The warm-ups a capture needs are undone (snapshot,
restore), so a graphed run takes the same steps as the eager one (tested on CPU: tests/test_training.py).
Not yet run on a GPU (docs/gpu.md)."""
from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Callable

import torch

from ..modeling.batching import collate
from ..modeling.encoding import IGNORE

if TYPE_CHECKING:
    from ..params import Train


def use_cuda_graphs(config: Train, device: torch.device, context: str, world_size: int) -> bool:
    """Graphs need fixed shapes and one process: context none (32 rows × a multiple of pad_multiple), no DDP,
    not compile's own graphs. `auto` takes them where they can run; `true` says why they cannot."""
    why_not = ("there is no CUDA device" if device.type != "cuda" else
               "context abstract batches change shape every step" if context != "none" else
               "data parallel (torchrun) runs the eager step" if world_size > 1 else
               "train.compile reduce-overhead makes graphs of its own" if config.compile == "reduce-overhead" else None)
    if config.cuda_graphs == "true" and why_not:
        print(f"train.cuda_graphs: true, but {why_not}: training without CUDA graphs", flush=True)
    return config.cuda_graphs != "false" and why_not is None


def graphed_step(update: Callable, model, params: list, optimizer, scheduler, pad_id: int, multiple: int,
                 device: torch.device, max_graphs: int = 32) -> Callable[[list[dict]], torch.Tensor]:
    """The step as CUDA graphs, one per batch shape (rows, padded length), captured the first time a shape
    comes; a replay launches the whole step at once, so the GPU never waits for Python.

    Before a capture the step runs twice eagerly (cuBLAS, AdamW state), then model and optimizer are put
    back exactly as they were: capturing never changes the weights. Gradients stay allocated (zeroed inside
    the graph), the learning rate is a device tensor the scheduler fills, the loss scale (1 / labelled
    sentences) is computed on the device. All graphs share one memory pool; a replay's loss is copied out
    before the next replay can overwrite it, so sharing is safe and callers may keep the losses. A shape
    past `max_graphs` runs the same step eagerly.
    """
    for group in optimizer.param_groups:
        group["capturable"] = True
        group["lr"] = torch.tensor(float(group["lr"]), dtype=torch.float32, device=device)
    graphs: dict[tuple[int, int], tuple[torch.cuda.CUDAGraph, dict, torch.Tensor]] = {}
    pool = torch.cuda.graph_pool_handle()

    def body(batch: dict) -> torch.Tensor:
        grads = [p.grad for p in params if p.grad is not None]
        if grads:
            torch._foreach_zero_(grads)
        scale = 1.0 / (batch["labels"] != IGNORE).sum().clamp(min=1).float()
        return update(batch, scale)

    def capture(shape: tuple[int, int]):
        return _capture(shape, body, model, optimizer, pad_id, device, pool)

    def step(global_batch: list[dict]) -> torch.Tensor:
        nonlocal max_graphs
        batch = collate(global_batch, pad_id, multiple)
        shape = tuple(batch["input_ids"].shape)
        if shape not in graphs and len(graphs) < max_graphs:
            graphs[shape] = capture(shape)
            if graphs[shape] is None:  # no more captures
                max_graphs = 0
        if graphs.get(shape) is not None:
            graph, static, loss = graphs[shape]
            for key, value in static.items():
                value.copy_(batch[key].pin_memory(), non_blocking=True)
            graph.replay()
            loss = loss.clone()  # the graph's output buffer: the next replay writes over it
        else:
            loss = body({k: v.pin_memory().to(device, non_blocking=True) for k, v in batch.items()})
        if scheduler is not None:
            scheduler.step()
        return loss

    step.graphs = graphs  # for tests and benchmarks: the shapes captured so far
    return step


def snapshot(model, optimizer) -> dict:
    """Copies of the weights and the optimizer's state, to be put back in place by `restore`."""
    return {"params": [p.detach().clone() for p in model.parameters()],
            "state": {p: {k: v.clone() for k, v in st.items() if torch.is_tensor(v)}
                      for p, st in optimizer.state.items()}}


def restore(model, optimizer, saved: dict) -> None:
    """Put weights and optimizer state back into the same tensors (graphs hold their addresses); state
    created since the snapshot goes back to what AdamW starts from: zeros."""
    with torch.no_grad():
        for p, copy in zip(model.parameters(), saved["params"]):
            p.copy_(copy)
        for p, st in optimizer.state.items():
            for k, v in st.items():
                if not torch.is_tensor(v):
                    continue
                if p in saved["state"]:
                    v.copy_(saved["state"][p][k])
                else:
                    v.zero_()
        for p in model.parameters():
            if p.grad is not None:
                p.grad.zero_()


def _capture(shape: tuple[int, int], body: Callable, model, optimizer, pad_id: int, device: torch.device, pool):
    """(graph, its static inputs, its loss) of the step for one batch shape, after two eager warm-ups that are
    then undone; None where capturing fails (training goes on without graphs)."""
    static = {"input_ids": torch.full(shape, pad_id, dtype=torch.long, device=device),
              "attention_mask": torch.ones(shape, dtype=torch.long, device=device),
              "labels": torch.zeros(shape[0], dtype=torch.long, device=device)}
    saved = snapshot(model, optimizer)
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*capturable=True.*")
        for _ in range(2):
            body(static)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    try:
        with torch.cuda.graph(graph, pool=pool):
            loss = body(static)
    except RuntimeError as e:  # e.g. a model that syncs with the host inside forward
        print(f"CUDA graph capture failed ({str(e).splitlines()[0][:200]}); training without graphs", flush=True)
        restore(model, optimizer, saved)
        return None
    restore(model, optimizer, saved)
    return graph, static, loss
