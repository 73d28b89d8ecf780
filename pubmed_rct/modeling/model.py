"""The model: build one for a context, load a trained one, read sentence logits, predict fast."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from . import spec
from .batching import CPU_WIDTH, collate, cut_wide, pack
from .encoding import check_context

MODEL_HINT = ("offline, point `model` at a local copy (`hf download allenai/scibert_scivocab_uncased --local-dir DIR` "
              "where the hub is reachable; `dvc exp run -S model=/abs/path/to/DIR`; README: Offline)")


class ModelError(ValueError):
    """The model or its tokenizer could not be loaded: one line saying why, and the offline route."""

    def __init__(self, what: str, name: str, error: Exception):
        reason = " ".join(str(error).split())  # transformers' messages run over several lines
        super().__init__(f"{what} '{name}' could not be loaded: {reason}; {MODEL_HINT}")


def _auto_class(context: str):
    from transformers import AutoModelForSequenceClassification, AutoModelForTokenClassification
    return AutoModelForSequenceClassification if check_context(context) == "none" else AutoModelForTokenClassification


def build_model(name: str, labels: list[str], settings: spec.Spec):
    """A pretrained encoder with a fresh head over `labels`, its config recording the model spec."""
    try:
        model = _auto_class(settings.context).from_pretrained(  # fp32 master weights, whatever the checkpoint's dtype
            name, dtype=torch.float32, num_labels=len(labels), id2label=dict(enumerate(labels)),
            label2id={l: i for i, l in enumerate(labels)})
    except OSError as e:
        raise ModelError("model", name, e) from e
    spec.write(model.config, settings)
    return model


def load_tokenizer(name: str):
    from transformers import AutoTokenizer
    try:
        return AutoTokenizer.from_pretrained(name, use_fast=True)
    except OSError as e:
        raise ModelError("the tokenizer of model", name, e) from e


def trained_config(path: str | Path, context: str | None = None):
    """(config, context, labels) of a model folder written by the train stage, its weights not read; its whole
    spec checked (a setting it lacks is named)."""
    from transformers import AutoConfig
    path = Path(path)
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"{path}: no trained model here (no config.json); run `dvc repro train` "
                                "or pass --model/--run-id")
    config = AutoConfig.from_pretrained(path)
    saved = spec.read(config, path).context
    if context is not None and context != saved:
        raise ValueError(f"{path}: model was trained with context '{saved}', input was built for '{context}'")
    return config, saved, [config.id2label[i] for i in range(config.num_labels)]


def load_trained(path: str | Path, context: str | None = None, **kwargs):
    """(model, tokenizer, context, labels) of a model folder written by the train stage; `kwargs` go to
    from_pretrained (attn_implementation, ...)."""
    _, saved, labels = trained_config(path, context)
    model = _auto_class(saved).from_pretrained(path, **kwargs)
    return model, load_tokenizer(str(path)), saved, labels


def device_and_dtype(precision: str = "auto") -> tuple[torch.device, torch.dtype | None]:
    """CUDA with bf16 autocast where supported, else CPU in fp32."""
    if torch.cuda.is_available():
        dev = torch.device("cuda", torch.cuda.current_device())
        bf16 = precision in ("auto", "bf16") and torch.cuda.is_bf16_supported()
        return dev, torch.bfloat16 if bf16 else None
    if precision == "bf16":
        return torch.device("cpu"), torch.bfloat16
    return torch.device("cpu"), None


@lru_cache(maxsize=1)
def cpu_has_bf16() -> bool:
    """Native bf16 matrix instructions (AVX-512 BF16 or AMX): there bf16 inference is ~2x faster."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def inference_dtype(device: torch.device, dtype: torch.dtype | None, precision: str) -> torch.dtype | None:
    """bf16 for inference on GPUs (as in training) and on CPUs with native bf16; else fp32.
    Measured on nicta test with a trained MiniLM: 99.75 % of labels agree with fp32 (benchmarks/README.md)."""
    if dtype is None and precision == "auto" and device.type == "cpu" and cpu_has_bf16():
        return torch.bfloat16
    return dtype


def sentence_logits(model, batch: dict, context: str) -> torch.Tensor:
    """Logits of every classified sentence in the batch, in the order of batch['labels']."""
    logits = model(input_ids=batch["input_ids"], attention_mask=attention_mask(model, batch["attention_mask"])).logits
    if context == "none":
        return logits
    return logits[batch["pos_batch"], batch["pos_token"]]


def attention_mask(model, mask: torch.Tensor) -> torch.Tensor:
    """The padding mask as SDPA attention takes it, (batch, 1, 1, length) booleans, where the model uses SDPA
    (BERT's default). Given the 2D mask, transformers first asks whether any token is padding, to drop the mask:
    on a GPU that question waits for the GPU, every forward. Built here, nothing waits; same logits."""
    config = getattr(getattr(model, "module", model), "config", None)  # DDP keeps the model in .module
    if getattr(config, "_attn_implementation", None) == "sdpa":
        return mask[:, None, None, :].bool()
    return mask


@torch.inference_mode()
def predict_proba(model, examples: list[dict], context: str, pad_id: int, batch_size: int = 256,
                  precision: str = "auto", multiple: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(rows, probabilities) for every classified position; batches sorted by length, bf16 on GPU.

    `batch_size` counts sentences, as in training: whole abstracts (context abstract) are packed up to it.

    Padding: to a multiple of 16 on GPU (a few fixed shapes); on CPU, where every padded token costs time, none
    beyond the longest, and a batch is cut where an input is more than CPU_WIDTH times its shortest (one
    10-sentence abstract, `none`: padded 2.1× its real tokens before; measured in benchmarks/README.md)."""
    device, dtype = device_and_dtype(precision)
    dtype = inference_dtype(device, dtype, precision)
    if getattr(model, "device_type", None) == "cpu":  # an ONNX Runtime session (inference.onnx_runtime.OnnxModel)
        device, dtype = torch.device("cpu"), None
    multiple = multiple or (16 if device.type == "cuda" else 1)
    model.to(device).eval()
    lengths = [len(e["input_ids"]) for e in examples]
    order = sorted(range(len(examples)), key=lengths.__getitem__)
    batches = pack(order, [len(e["positions"]) for e in examples], batch_size)
    if device.type == "cpu":
        batches = [part for b in batches for part in cut_wide(b, lengths, CPU_WIDTH)]
    rows, probs = [], []
    for indices in batches:
        chunk = [examples[i] for i in indices]
        batch = collate(chunk, pad_id, multiple, device)
        with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            logits = sentence_logits(model, batch, context)
        probs.append(torch.softmax(logits.float(), -1).cpu())
        rows.extend(r for e in chunk for r in e["rows"])
    if not rows:
        return np.zeros(0, dtype=np.int64), np.zeros((0, model.config.num_labels), dtype=np.float32)
    return np.asarray(rows), torch.cat(probs).numpy()
