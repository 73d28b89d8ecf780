"""CPU inference through ONNX Runtime: export a trained model folder to ONNX with int8 weights, and run it.

The export is the path ONNX Runtime documents for BERT: `torch.onnx.export` (its TorchScript exporter, eager
attention), then `onnxruntime.transformers.optimizer` fuses each layer's attention, GELU and layer norms into
single kernels, then `onnxruntime.quantization.quantize_dynamic` stores the weights of every matrix product
as int8 (activations are quantized on the fly, so no calibration set is needed). torch.onnx's newer dynamo
exporter writes the same logits, but its attention graph is not one the optimizer fuses, and unfused it ran
slower (benchmarks/README.md: CPU inference).

The file lives in the model folder beside the PyTorch weights (`model.int8.onnx`, or `model.fp32.onnx` where
int8 is turned off), written by the train stage, so it travels wherever the folder goes: DVC's cache and
remote, the MLflow model and registry, the label job's workers. A model folder without one still works,
through PyTorch, and `python -m pubmed_rct export-onnx DIR` adds one.
"""
from __future__ import annotations

import contextlib
import copy
import logging
import os
import shutil
import tempfile
import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np

PRECISIONS = ("int8", "fp32")
BACKENDS = ("auto", "onnx", "torch")  # Labeler.load's choice (predict, serve and label take --backend)
INPUTS = ("input_ids", "attention_mask")


def onnx_file(model_dir: str | Path, precision: str) -> Path:
    return Path(model_dir) / f"model.{precision}.onnx"


def find(model_dir: str | Path) -> Path | None:
    """The model folder's ONNX file (int8 before fp32), or None."""
    for precision in PRECISIONS:
        if (f := onnx_file(model_dir, precision)).is_file():
            return f
    return None


def export(model_dir: str | Path, precision: str = "int8", out_dir: str | Path | None = None,
           exclude: tuple[str, ...] = ()) -> Path:
    """Write `model.<precision>.onnx` for the trained model in `model_dir` into `out_dir` (default: the same
    folder); the file appears whole or not at all. `exclude`: nodes left in fp32 in an int8 file. Returns its
    path."""
    import onnx
    if precision not in PRECISIONS:
        raise ValueError(f"ONNX precision {precision!r} is not one of {', '.join(PRECISIONS)}")
    target = onnx_file(out_dir or model_dir, precision)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".onnx-") as tmp:
        fused = fused_graph(model_dir, Path(tmp))
        staged = Path(tmp) / target.name
        if precision == "int8":
            quantize(fused, staged, exclude)
        else:
            shutil.copy2(fused, staged)
        onnx.checker.check_model(str(staged))
        os.replace(staged, target)
    return target


def fused_graph(model_dir: str | Path, folder: Path) -> Path:
    """The trained model as an fp32 ONNX graph with ONNX Runtime's BERT fusions (folder/fused.onnx)."""
    import torch
    from onnxruntime.transformers import optimizer

    from .model import load_trained
    model, _, _, _ = load_trained(model_dir, attn_implementation="eager")  # the attention graph ORT fuses
    model.eval()
    config = model.config
    traced, fused = folder / "traced.onnx", folder / "fused.onnx"
    ids = torch.full((2, 16), config.vocab_size - 1, dtype=torch.long)  # any word piece: shapes only
    mask = torch.ones_like(ids)
    mask[1, 12:] = 0  # padding in the example: the mask is never traced away
    axes = {"input_ids": {0: "batch", 1: "tokens"}, "attention_mask": {0: "batch", 1: "tokens"},
            "logits": {0: "batch", 1: "tokens"} if _per_token(model) else {0: "batch"}}
    with torch.inference_mode(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tracer's notes on Python branches it fixed for these shapes
        torch.onnx.export(model, (), traced, kwargs={"input_ids": ids, "attention_mask": mask},
                          input_names=list(INPUTS), output_names=["logits"], dynamic_axes=axes,
                          opset_version=17, dynamo=False)
    if config.model_type in ("bert", "roberta"):  # SciBERT, MiniLM: the fusions ORT has for them
        opt = optimizer.optimize_model(str(traced), model_type=config.model_type,
                                       num_heads=config.num_attention_heads, hidden_size=config.hidden_size)
        opt.save_model_to_file(str(fused))
    else:
        shutil.copy2(traced, fused)
    return fused


@contextlib.contextmanager
def _quiet_root_logger():
    quiet = logging.NullHandler()  # ORT's advice to pre-process goes to the root logger, which logging would
    logging.getLogger().addHandler(quiet)  # otherwise set up for the whole process
    try:
        yield
    finally:
        logging.getLogger().removeHandler(quiet)


def quantize(fused: Path, out: Path, exclude: tuple[str, ...] = ()) -> Path:
    """int8 weights, dynamic activations: per output channel, in 7 bits (ORT's advice for CPUs without VNNI,
    where 8 can saturate); on nicta test with trained MiniLM the only setting of five tried within 0.3
    micro-F1 points of fp32 in both context modes (benchmarks/README.md). `exclude`: nodes kept in fp32. Fused
    ops have no shape inference: FLOAT."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic
    with _quiet_root_logger():
        quantize_dynamic(fused, out, weight_type=QuantType.QInt8, per_channel=True, reduce_range=True,
                         nodes_to_exclude=list(exclude), extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
    return out


def quantizable(fused: Path) -> list[str]:
    """The nodes `quantize` turns to int8, in graph order: the embeddings, each fused attention, each matrix product
    with weights (the pooler's and the classifier's too)."""
    import onnx
    graph = onnx.load(str(fused), load_external_data=False).graph
    weights = {i.name for i in graph.initializer}
    kinds = ("EmbedLayerNormalization", "Attention", "MatMul", "Gemm")
    # a Gemm is quantized as the MatMul it is first split into, and excluded by that name
    return [n.name + ("_MatMul" if n.op_type == "Gemm" else "") for n in graph.node
            if n.op_type in kinds and any(i in weights for i in n.input)]


def _per_token(model) -> bool:
    return type(model).__name__.endswith("ForTokenClassification")


def available() -> str | None:
    """None where onnxruntime can be imported, else why not."""
    try:
        import onnxruntime  # noqa: F401
    except ImportError as e:
        return f"onnxruntime cannot be imported ({e})"
    return None


class OnnxModel:
    """An ONNX Runtime session that predict_proba calls as it calls a PyTorch model: `model(input_ids=...,
    attention_mask=...).logits`. One session serves every thread (`run` is thread-safe and releases the GIL)."""

    device_type = "cpu"  # predict_proba feeds it CPU tensors, on a GPU machine too

    def __init__(self, path: str | Path, config, threads: int | None = None):
        import onnxruntime as ort
        import torch
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = threads or torch.get_num_threads()
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")  # idle threads leave the cores
        self.path = Path(path)
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.config = copy.copy(config)  # a PyTorch model sharing the config keeps its own attention
        self.config._attn_implementation = "eager"  # attention_mask() then passes the plain 2D mask
        self.precision = self.path.suffixes[0].lstrip(".") if self.path.suffixes else "fp32"

    def __call__(self, input_ids, attention_mask):
        import torch
        feed = {"input_ids": input_ids.numpy().astype(np.int64, copy=False),
                "attention_mask": attention_mask.numpy().astype(np.int64, copy=False)}
        logits = self.session.run(["logits"], feed)[0]
        return SimpleNamespace(logits=torch.from_numpy(logits))

    def to(self, *_args, **_kwargs) -> "OnnxModel":
        return self  # the CPU is its device; its weights' precision is the file's

    def eval(self) -> "OnnxModel":
        return self
