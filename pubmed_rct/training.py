"""The training loop: length-grouped batches padded to a few shapes, bf16 autocast and fused AdamW on GPU,
the whole step (forward, backward, clipping, AdamW) replayed as one CUDA graph per batch shape on a single
GPU (torch.compile optional), data parallel under torchrun, checkpoints that an interrupted run resumes from.

The maths do not depend on the hardware: `batch_size` is the global batch, split evenly over the
processes; the loss is normalised by the global number of labelled sentences, so 1 or N processes
take the same optimizer steps.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import random
import shutil
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Callable

import torch
import torch.distributed as dist
import torch.nn.functional as F

from . import checkpoints
from .batching import collate, pack
from .encoding import IGNORE
from .model import device_and_dtype, sentence_logits
from .sampling import class_weights


@dataclass
class TrainConfig:
    learning_rate: float = 2e-5
    batch_size: int = 32            # global batch (all processes together)
    num_epochs: int = 3
    weight_decay: float = 0.0       # the Hugging Face Trainer's defaults, as the seed used them
    warmup_ratio: float = 0.0
    max_grad_norm: float = 1.0
    seed: int = 42
    precision: str = "auto"         # auto: bf16 autocast where the GPU supports it, else fp32
    compile: str = "false"          # true | reduce-overhead (CUDA graphs) | auto (true on CUDA); see README
    cuda_graphs: str = "false"      # auto: one graph per batch shape on a single CUDA GPU, context none | true
    fused_optimizer: bool = True    # fused AdamW kernels on CUDA
    pad_multiple: int = 16          # pad each batch to a multiple of this: a few fixed shapes
    group_by_length: bool = True    # batches of similar lengths (shuffled in chunks of 50 batches)
    class_weights: str = "none"     # none | balanced | sqrt: loss weighted by inverse class frequency (sampling)
    log_every_steps: int = 50       # host-device sync for the loss only this often
    checkpoint_every_steps: int = 500

    def __post_init__(self):  # YAML reads true/false as booleans: the switches are kept as lower-case words
        self.compile, self.cuda_graphs = str(self.compile).lower(), str(self.cuda_graphs).lower()
        if self.cuda_graphs not in ("auto", "true", "false"):
            raise ValueError(f"params.yaml train.cuda_graphs: '{self.cuda_graphs}' is not one of auto, true, false")
        class_weights([1], self.class_weights)  # refuses an unknown weighting now, not after the model has loaded

    @classmethod
    def from_params(cls, train: dict, seed: int) -> "TrainConfig":
        """The `train:` section of params.yaml, each value cast to its field's type; an unknown key (a typo
        such as `learning_rat`) is an error, not silently dropped."""
        casts = {f.name: type(f.default) for f in fields(cls) if f.name != "seed"}
        unknown = sorted(set(train) - set(casts))
        if unknown:
            raise ValueError(f"params.yaml train: unknown key(s) {', '.join(unknown)}; the known keys are "
                             f"{', '.join(sorted(casts))}")
        values = {}
        for key, value in train.items():
            try:
                values[key] = bool(value) if casts[key] is bool else casts[key](value)
            except (TypeError, ValueError) as e:
                raise ValueError(f"params.yaml train.{key}: {value!r} is not a valid {casts[key].__name__}") from e
        return cls(**values, seed=int(seed))


def world() -> tuple[int, int]:
    """(rank, world_size), starting the process group under torchrun / accelerate launch."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size > 1 and not dist.is_initialized():
        if torch.cuda.is_available():
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return (dist.get_rank(), size) if size > 1 else (0, 1)


def epoch_batches(lengths: list[int], batch_size: int, seed: int, epoch: int, group_by_length: bool,
                  weights: list[int] | None = None, min_examples: int = 1) -> list[list[int]]:
    """The global batches of one epoch: the same for every process and every run with this seed.

    A batch holds `batch_size` labelled sentences: with one sentence an example (context none) that is
    `batch_size` examples; whole abstracts (context abstract) are packed until the next would pass it
    (and at least `min_examples` are in, one per process), so every mode takes about the same steps.
    """
    weights = weights or [1] * len(lengths)
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
            filled += weights[i]
        order = [i for chunk in chunks for i in sorted(chunk, key=lambda i: -lengths[i])]
    batches = pack(order, weights, batch_size, min_examples)
    if group_by_length:
        rng.shuffle(batches)
    return batches


def fingerprint(config: TrainConfig, model_name: str, mode: str, data_file: Path) -> str:
    h = hashlib.sha256(json.dumps([asdict(config), model_name, mode], sort_keys=True).encode())
    with open(data_file, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]


def train(model, examples: list[dict], config: TrainConfig, mode: str, pad_id: int,
          checkpoint_dir: Path | None = None, on_log: Callable[[dict, int], None] | None = None,
          on_epoch_end: Callable[[object, int, int], None] | None = None, progress: bool = True,
          resume: dict | None = None, carry: dict | None = None) -> dict:
    """Train `model` in place; returns train_loss, train_runtime, train_samples_per_second, steps, samples.

    `resume`: a checkpoint (checkpoints.load) to go on from; else the one in checkpoint_dir, if readable.
    `carry`: the caller's own state (its MLflow run, the curve logged so far), saved with every checkpoint and
    put back from `resume`, so that a resumed run keeps what the killed one had logged."""
    rank, world_size = world()
    if config.batch_size % world_size:
        raise ValueError(f"params.yaml train.batch_size {config.batch_size} is the global batch and must divide "
                         f"evenly over {world_size} processes")
    device, dtype = device_and_dtype(config.precision)
    torch.manual_seed(config.seed + rank)  # own dropout draws per process (weights come from rank 0 via DDP)
    model.to(device).train()
    optimizer = make_optimizer(model, config, device)
    weights = [sum(l != IGNORE for l in e["labels"]) for e in examples]
    examples = [e for e, w in zip(examples, weights) if w]  # abstracts left without a labelled sentence
    weights = [w for w in weights if w]
    lengths = [len(e["input_ids"]) for e in examples]
    plan = [epoch_batches(lengths, config.batch_size, config.seed, epoch, config.group_by_length, weights,
                          world_size) for epoch in range(config.num_epochs)]
    total_steps = sum(len(batches) for batches in plan)
    scheduler = make_scheduler(optimizer, config, total_steps)

    state = {"step": 0, "loss_sum": 0.0, "samples": 0, "runtime": 0.0}
    ckpt = checkpoint_dir / "state.pt" if checkpoint_dir else None
    saved = resume if resume is not None else checkpoints.load(ckpt) if ckpt is not None else None
    if saved is not None:
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        for group in optimizer.param_groups:  # a run with CUDA graphs saves lr as a tensor; make_step decides anew
            group["lr"], group["capturable"] = float(group["lr"]), False
        scheduler.load_state_dict(saved["scheduler"])
        state = saved["state"]
        checkpoints.restore_rng(saved["rng"], rank, world_size, device)
        if carry is not None:
            carry.update(saved.get("carry", {}))
        if rank == 0:
            print(f"resuming from checkpoint {ckpt} at step {state['step']} of {total_steps}", flush=True)

    loss_weights = class_weights(label_counts(examples, model.config.num_labels), config.class_weights)
    step = make_step(model, optimizer, scheduler, config, mode, pad_id, device, dtype, rank, world_size, loss_weights)

    bar = None
    if progress and rank == 0:
        from tqdm.auto import tqdm
        bar = tqdm(total=total_steps, initial=state["step"], desc="train", unit="step", dynamic_ncols=True)
    loss_acc = torch.zeros((), device=device)
    acc_steps = 0
    started = time.perf_counter()
    runtime_before = state["runtime"]
    epoch_start = 0  # the global step at which this epoch starts
    for epoch, batches in enumerate(plan):
        done = state["step"] - epoch_start  # steps of this epoch taken before a resume
        epoch_start += len(batches)
        if done >= len(batches):
            continue
        for global_batch in batches[done:]:
            loss = step([examples[i] for i in global_batch])
            loss_acc += loss.detach() / world_size
            acc_steps += 1
            state["step"] += 1
            state["samples"] += sum(weights[i] for i in global_batch)
            last = state["step"] == total_steps
            if acc_steps == config.log_every_steps or last or (ckpt and state["step"] % config.checkpoint_every_steps == 0):
                if world_size > 1:
                    dist.all_reduce(loss_acc)
                value = loss_acc.item()
                state["loss_sum"] += value
                if on_log and rank == 0:
                    on_log({"train_loss_step": value / acc_steps, "learning_rate": float(scheduler.get_last_lr()[0])},
                           state["step"])
                if bar is not None:
                    bar.set_postfix(loss=f"{value / acc_steps:.4f}")
                loss_acc.zero_()
                acc_steps = 0
            if bar is not None:
                bar.update(1)
            if ckpt and state["step"] % config.checkpoint_every_steps == 0 and not last:
                state["runtime"] = runtime_before + time.perf_counter() - started
                rng = checkpoints.rng_states(device, world_size)  # every rank's, gathered on rank 0
                if rank == 0:
                    checkpoints.save(ckpt, model, optimizer, scheduler, state, rng, carry)
                if world_size > 1:
                    dist.barrier()
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
    runtime = runtime_before + time.perf_counter() - started
    if ckpt is not None and rank == 0:
        shutil.rmtree(ckpt.parent, ignore_errors=True)
    if world_size > 1:
        dist.destroy_process_group()
    return {"train_loss": state["loss_sum"] / max(total_steps, 1), "train_runtime": round(runtime, 3),
            "class_weights": [round(w, 6) for w in loss_weights] if loss_weights else None,
            "train_samples_per_second": round(state["samples"] / max(runtime, 1e-9), 3),
            "train_steps": state["step"], "train_samples": state["samples"], "world_size": world_size,
            "per_device_batch_size": config.batch_size // world_size, "global_batch_size": config.batch_size}


def label_counts(examples: list[dict], num_labels: int) -> list[int]:
    """Labelled sentences per class (label-id order) in the training examples: the split as trained."""
    counts = [0] * num_labels
    for e in examples:
        for label in e["labels"]:
            if label != IGNORE:
                counts[label] += 1
    return counts


def make_optimizer(model, config: TrainConfig, device: torch.device) -> torch.optim.Optimizer:
    """AdamW, no decay on biases and LayerNorm; fused kernels on CUDA."""
    decay = [p for n, p in model.named_parameters() if p.ndim > 1 and "LayerNorm" not in n]
    no_decay = [p for n, p in model.named_parameters() if not (p.ndim > 1 and "LayerNorm" not in n)]
    return torch.optim.AdamW([{"params": decay, "weight_decay": config.weight_decay},
                              {"params": no_decay, "weight_decay": 0.0}],
                             lr=config.learning_rate, fused=config.fused_optimizer and device.type == "cuda")


def make_scheduler(optimizer, config: TrainConfig, total_steps: int):
    """The Trainer's schedule: transformers' linear warmup over ceil(warmup_ratio x steps), then linear decay."""
    from transformers import get_linear_schedule_with_warmup
    return get_linear_schedule_with_warmup(optimizer, math.ceil(config.warmup_ratio * total_steps), total_steps)


def _graphs():
    """The CUDA-graph step (graphs.py), imported only when train.cuda_graphs asks for it."""
    from . import graphs
    return graphs


def make_step(model, optimizer, scheduler, config: TrainConfig, mode: str, pad_id: int, device: torch.device,
              dtype: torch.dtype | None, rank: int = 0, world_size: int = 1,
              weights: list[float] | None = None) -> Callable[[list[dict]], torch.Tensor]:
    """One optimizer step on a global batch of examples; returns the loss on the device (no host sync).
    `weights`: a loss weight per class (class_weights), or None for the plain loss."""
    weight = torch.tensor(weights, dtype=torch.float32, device=device) if weights else None
    net = model
    if world_size > 1:
        net = torch.nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    if config.compile in ("true", "reduce-overhead") or (config.compile == "auto" and device.type == "cuda"):
        torch._dynamo.config.cache_size_limit = max(torch._dynamo.config.cache_size_limit, 64)
        net = torch.compile(net, mode="reduce-overhead" if config.compile == "reduce-overhead" else None)
    graphs = config.cuda_graphs != "false" and _graphs().use_cuda_graphs(config, device, mode, world_size)
    params = [p for p in model.parameters() if p.requires_grad]

    def update(batch: dict, scale) -> torch.Tensor:
        """Forward, loss × scale, backward, clipping, AdamW: no host-device sync inside."""
        with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None,
                            cache_enabled=not graphs):  # graphs: no cast cache across captures
            logits = sentence_logits(net, batch, mode)
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


def examples_from_table(table) -> list[dict]:
    """Rows of a tokenized Parquet table as example dicts."""
    cols = {name: table.column(name).to_pylist() for name in ("input_ids", "positions", "labels", "rows")}
    return [dict(zip(cols, values)) for values in zip(*cols.values())]
