"""The training loop: length-grouped batches padded to a few shapes, bf16 autocast and fused AdamW on GPU,
the whole step (forward, backward, clipping, AdamW) replayed as one CUDA graph per batch shape on a single
GPU (torch.compile optional), data parallel under torchrun, checkpoints that an interrupted run resumes from.

The maths do not depend on the hardware: `batch_size` is the global batch, split evenly over the
processes; the loss is normalised by the global number of labelled sentences, so 1 or N processes
take the same optimizer steps.
"""
from __future__ import annotations

import json
import math
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import torch
import torch.distributed as dist
import torch.nn.functional as F

from . import checkpoints
from .distributed import world
from ..modeling.batching import collate, pack
from ..modeling.encoding import IGNORE
from ..modeling.model import device_and_dtype, sentence_logits
from ..io import digest
from ..params import Train
from ..corpus.sampling import class_weights


def epoch_batches(lengths: list[int], batch_size: int, seed: int, epoch: int, group_by_length: bool,
                  n_labelled: list[int] | None = None, min_examples: int = 1) -> list[list[int]]:
    """The global batches of one epoch: the same for every process and every run with this seed.

    A batch holds `batch_size` labelled sentences: with one sentence an example (context none) that is
    `batch_size` examples; whole abstracts (context abstract) are packed until the next would pass it
    (and at least `min_examples` are in, one per process), so either context takes about the same steps.
    """
    n_labelled = n_labelled or [1] * len(lengths)  # labelled sentences per example
    rng = random.Random(seed * 1000 + epoch)
    order = list(range(len(lengths)))
    rng.shuffle(order)
    if group_by_length:  # sort by length within chunks of about 50 batches: similar lengths, still random
        chunks: list[list[int]] = [[]]
        filled = 0
        for i in order:
            if filled >= batch_size * 50:
                chunks.append([])
                filled = 0
            chunks[-1].append(i)
            filled += n_labelled[i]
        order = [i for chunk in chunks for i in sorted(chunk, key=lambda i: -lengths[i])]
    batches = pack(order, n_labelled, batch_size, min_examples)
    if group_by_length:
        rng.shuffle(batches)
    return batches


def fingerprint(config: Train, seed: int, model_name: str, context: str, data_file: Path) -> str:
    """What a checkpoint belongs to: the train params, the random seed, the model, the context and the data."""
    return digest([json.dumps([asdict(config), seed, model_name, context], sort_keys=True).encode(), data_file])[:16]


@dataclass
class _Loop:
    """One training's moving parts, as the steps, the loss log and the checkpoints share them."""
    model: object
    optimizer: object
    scheduler: object
    config: Train
    device: torch.device
    rank: int
    world_size: int
    ckpt: Path | None
    carry: dict | None
    on_log: Callable[[dict, int], None] | None
    bar: object | None
    state: dict
    total_steps: int
    loss_acc: torch.Tensor = None
    acc_steps: int = 0
    started: float = field(default_factory=time.perf_counter)

    def __post_init__(self):
        self.loss_acc = torch.zeros((), device=self.device)
        self.runtime_before = self.state["runtime"]

    def runtime(self) -> float:
        return self.runtime_before + time.perf_counter() - self.started

    def log_loss(self) -> None:
        """The loss since the last log: one host-device sync, then on_log and the bar."""
        if self.world_size > 1:
            dist.all_reduce(self.loss_acc)
        value = self.loss_acc.item()
        self.state["loss_sum"] += value
        if self.on_log and self.rank == 0:
            self.on_log({"train_loss_step": value / self.acc_steps,
                         "learning_rate": float(self.scheduler.get_last_lr()[0])}, self.state["step"])
        if self.bar is not None:
            self.bar.set_postfix(loss=f"{value / self.acc_steps:.4f}")
        self.loss_acc.zero_()
        self.acc_steps = 0

    def save_checkpoint(self) -> None:
        self.state["runtime"] = self.runtime()
        rng = checkpoints.rng_states(self.device, self.world_size)  # every rank's, gathered on rank 0
        if self.rank == 0:
            checkpoints.save(self.ckpt, self.model, self.optimizer, self.scheduler, self.state, rng, self.carry)
        if self.world_size > 1:
            dist.barrier()

    def took(self, loss: torch.Tensor, samples: int) -> None:
        """One step taken: its loss kept on the device; logged and checkpointed when due."""
        self.loss_acc += loss.detach() / self.world_size
        self.acc_steps += 1
        self.state["step"] += 1
        self.state["samples"] += samples
        last = self.state["step"] == self.total_steps
        due = self.ckpt is not None and self.state["step"] % self.config.checkpoint_every_steps == 0 and not last
        if self.acc_steps == self.config.log_every_steps or last or due:  # a checkpoint holds the loss so far
            self.log_loss()
        if due:
            self.save_checkpoint()
        if self.bar is not None:
            self.bar.update(1)


def train(model, examples: list[dict], config: Train, context: str, pad_id: int, seed: int,
          checkpoint_dir: Path | None = None, on_log: Callable[[dict, int], None] | None = None,
          on_epoch_end: Callable[[object, int, int], None] | None = None, progress: bool = True,
          resume: dict | None = None, carry: dict | None = None) -> dict:
    """Train `model` in place; returns train_loss, train_runtime, train_samples_per_second, steps, samples.

    `resume`: a checkpoint (checkpoints.load) to go on from; else the one in checkpoint_dir, if readable.
    `carry`: the caller's own state (its MLflow run, the curve logged so far), saved with every checkpoint and
    put back from `resume`, so that a resumed run keeps what the killed one had logged."""
    rank, world_size = world()
    _check_batch(config, world_size)
    device, dtype = device_and_dtype(config.precision)
    torch.manual_seed(seed + rank)  # own dropout draws per process (weights come from rank 0 via DDP)
    model.to(device).train()
    optimizer = make_optimizer(model, config, device)
    examples, n_labelled, plan = _plan(examples, config, seed, world_size)
    total_steps = sum(len(batches) for batches in plan)
    scheduler = make_scheduler(optimizer, config, total_steps)
    ckpt = checkpoint_dir / "state.pt" if checkpoint_dir else None
    saved = resume if resume is not None else checkpoints.load(ckpt) if ckpt is not None else None
    state = {"step": 0, "loss_sum": 0.0, "samples": 0, "runtime": 0.0}
    if saved is not None:
        state = checkpoints.restore(saved, model, optimizer, scheduler, rank, world_size, device, carry)
        if rank == 0:
            print(f"resuming from checkpoint {ckpt} at step {state['step']} of {total_steps}", flush=True)
    loss_weights = class_weights(label_counts(examples, model.config.num_labels), config.class_weights)
    step = make_step(model, optimizer, scheduler, config, context, pad_id, device, dtype, rank, world_size, loss_weights)
    bar = None
    if progress and rank == 0:
        from tqdm.auto import tqdm
        bar = tqdm(total=total_steps, initial=state["step"], desc="train", unit="step", dynamic_ncols=True)
    loop = _Loop(model, optimizer, scheduler, config, device, rank, world_size, ckpt, carry, on_log, bar, state,
                 total_steps)
    epoch_start = 0  # the global step at which this epoch starts
    for epoch, batches in enumerate(plan):
        done = state["step"] - epoch_start  # steps of this epoch taken before a resume
        epoch_start += len(batches)
        if done >= len(batches):
            continue
        for global_batch in batches[done:]:
            loop.took(step([examples[i] for i in global_batch]), sum(n_labelled[i] for i in global_batch))
        if on_epoch_end is not None and rank == 0:
            model.eval()
            on_epoch_end(model, epoch + 1, state["step"])
            model.train()
        if world_size > 1:
            dist.barrier()
    if device.type == "cuda":
        torch.cuda.synchronize()
    if bar is not None:
        bar.close()
    if ckpt is not None and (saved is None or saved["state"]["step"] < total_steps):
        loop.save_checkpoint()  # the trained weights, kept until the caller has saved the model (checkpoints.discard)
    runtime = loop.runtime()
    return {"train_loss": state["loss_sum"] / max(total_steps, 1), "train_runtime": round(runtime, 3),
            "class_weights": [round(w, 6) for w in loss_weights] if loss_weights else None,
            "train_samples_per_second": round(state["samples"] / max(runtime, 1e-9), 3),
            "train_steps": state["step"], "train_samples": state["samples"], "world_size": world_size,
            "per_device_batch_size": config.batch_size // world_size, "global_batch_size": config.batch_size}


def _check_batch(config: Train, world_size: int) -> None:
    if config.batch_size % world_size:
        raise ValueError(f"params.yaml train.batch_size {config.batch_size} is the global batch and must divide "
                         f"evenly over {world_size} processes")


def _plan(examples: list[dict], config: Train, seed: int, world_size: int):
    """(examples with a labelled sentence, labelled sentences of each, every epoch's batches)."""
    n_labelled = [sum(l != IGNORE for l in e["labels"]) for e in examples]
    examples = [e for e, n in zip(examples, n_labelled) if n]  # abstracts left without a labelled sentence
    n_labelled = [n for n in n_labelled if n]
    lengths = [len(e["input_ids"]) for e in examples]
    plan = [epoch_batches(lengths, config.batch_size, seed, epoch, config.group_by_length, n_labelled,
                          world_size) for epoch in range(config.num_epochs)]
    return examples, n_labelled, plan


def label_counts(examples: list[dict], num_labels: int) -> list[int]:
    """Labelled sentences per class (label-id order) in the training examples: the split as trained."""
    counts = [0] * num_labels
    for e in examples:
        for label in e["labels"]:
            if label != IGNORE:
                counts[label] += 1
    return counts


def make_optimizer(model, config: Train, device: torch.device, fused: bool = True) -> torch.optim.Optimizer:
    """AdamW, no decay on biases and LayerNorm; fused kernels on CUDA unless `fused` is False."""
    decay = [p for n, p in model.named_parameters() if p.ndim > 1 and "LayerNorm" not in n]
    no_decay = [p for n, p in model.named_parameters() if not (p.ndim > 1 and "LayerNorm" not in n)]
    return torch.optim.AdamW([{"params": decay, "weight_decay": config.weight_decay},
                              {"params": no_decay, "weight_decay": 0.0}],
                             lr=config.learning_rate, fused=fused and device.type == "cuda")


def make_scheduler(optimizer, config: Train, total_steps: int):
    """The Trainer's schedule: transformers' linear warmup over ceil(warmup_ratio x steps), then linear decay."""
    from transformers import get_linear_schedule_with_warmup
    return get_linear_schedule_with_warmup(optimizer, math.ceil(config.warmup_ratio * total_steps), total_steps)


def _graphs():
    """The CUDA-graph step (cuda_graphs.py), imported only when train.cuda_graphs asks for it."""
    from . import cuda_graphs
    return cuda_graphs


def make_step(model, optimizer, scheduler, config: Train, context: str, pad_id: int, device: torch.device,
              dtype: torch.dtype | None, rank: int = 0, world_size: int = 1,
              loss_weights: list[float] | None = None) -> Callable[[list[dict]], torch.Tensor]:
    """One optimizer step on a global batch of examples; returns the loss on the device (no host sync).
    `loss_weights`: a weight per class (sampling.class_weights), or None for the plain loss."""
    weight = torch.tensor(loss_weights, dtype=torch.float32, device=device) if loss_weights else None
    net = model
    if world_size > 1:
        net = torch.nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    if config.compile in ("true", "reduce-overhead") or (config.compile == "auto" and device.type == "cuda"):
        torch._dynamo.config.cache_size_limit = max(torch._dynamo.config.cache_size_limit, 64)
        net = torch.compile(net, mode="reduce-overhead" if config.compile == "reduce-overhead" else None)
    graphs = config.cuda_graphs != "false" and _graphs().use_cuda_graphs(config, device, context, world_size)
    params = [p for p in model.parameters() if p.requires_grad]

    def update(batch: dict, scale) -> torch.Tensor:
        """Forward, loss × scale, backward, clipping, AdamW: no host-device sync inside."""
        with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None,
                            cache_enabled=not graphs):  # graphs: no cast cache across captures
            logits = sentence_logits(net, batch, context)
        loss = F.cross_entropy(logits.float(), batch["labels"], weight=weight, ignore_index=IGNORE,
                               reduction="sum") * scale
        loss.backward()
        if config.max_grad_norm > 0:
            torch.nn.utils.clip_grad_norm_(params, config.max_grad_norm)
        optimizer.step()
        return loss.detach()

    if graphs:
        return _graphs().graphed_step(update, model, params, optimizer, scheduler, pad_id, config.pad_multiple, device)

    def step(global_batch: list[dict]) -> torch.Tensor:
        labelled = sum(l != IGNORE for e in global_batch for l in e["labels"])
        batch = collate(global_batch[rank::world_size], pad_id, config.pad_multiple, device)
        # sum over this process's sentences / global count; DDP averages over processes, so × world_size
        loss = update(batch, world_size / max(labelled, 1))
        if scheduler is not None:
            scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        return loss

    return step
