"""Which file a CPU runs, decided once per model by its own validation split, and kept in the model folder
(`inference.json`) so that every consumer (predict, serve, the MLflow pyfunc, the label job) follows it.

The train stage exports the model to ONNX Runtime and, for `export.onnx: int8`, scores the int8 file on the
validation split against PyTorch: int8 is what CPUs run only where it costs at most `export.max_micro_f1_drop`
micro-F1 and `export.max_macro_f1_drop` macro-F1 points (params.yaml). Otherwise CPUs run the fp32 ONNX file:
it gives PyTorch fp32's labels (100 % agreement, benchmarks/README.md), is faster than PyTorch for one abstract
and as fast in batch, in less memory. Validation, not test, decides: test stays for the report (evaluate scores
the chosen file on it). `--backend` still overrides the decision.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Callable

FILE = "inference.json"


def read(folder: str | Path) -> dict | None:
    """The folder's decision, or None (a folder trained before decisions were kept)."""
    path = Path(folder) / FILE
    if not path.is_file():
        return None
    try:
        decision = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as e:
        raise ValueError(f"{path}: not JSON ({e}); the model folder is damaged: train again, or delete it to "
                         "let CPU consumers take the ONNX file there") from e
    return decision if isinstance(decision, dict) else None


def onnx_file(folder: str | Path) -> Path | None:
    """The ONNX file CPUs run: the decision's; in an older folder without one, int8 before fp32."""
    from .onnx_runtime import find
    decision = read(folder)
    if decision is None:
        return find(folder)
    name = decision.get("file")
    return Path(folder) / name if name and (Path(folder) / name).is_file() else None


def describe(decision: dict | None) -> str:
    """Why the CPU path is what it is, in a few words (for the one log line consumers print)."""
    return decision.get("why", "") if decision else "no inference.json (a model folder trained before it was kept)"


def decide(folder: Path, precision: str, bounds: tuple[float, float], score: Callable,
           max_fp32_nodes: int = 0) -> dict:
    """Export the model in `folder` for CPUs and write inference.json. `score(model, sample=None)` gives
    (micro-F1, macro-F1, labels, probabilities) on the validation split (its first `sample` sentences), of
    PyTorch for None, else of an ONNX Runtime model.

    Where int8 breaks the bounds, up to `max_fp32_nodes` of its nodes are left in fp32 before giving up on it:
    the nodes that move the outputs most, found by a sensitivity pass (`sensitive_nodes`), 1, 2, 4, ... of them
    until the bounds hold (export.max_fp32_nodes, off by default: on nicta-piboso's 801 validation sentences
    the choice did not hold on test in `abstract` mode; benchmarks/README.md, "A better int8")."""
    import tempfile
    from ..modeling.model import trained_config
    from .onnx_runtime import OnnxModel, fused_graph, onnx_file as file_of
    config = trained_config(folder)[0]
    decision: dict = {"bounds_points": {"micro_f1": bounds[0], "macro_f1": bounds[1]}, "split": "validation"}
    with tempfile.TemporaryDirectory(dir=folder, prefix=".onnx-") as tmp:  # traced once, saved twice
        fused = fused_graph(folder, Path(tmp))
        _save(fused, file_of(folder, "fp32"), None)
        if precision == "fp32":
            decision.update(file=file_of(folder, "fp32").name, precision="fp32", why="export.onnx: fp32")
            return write(folder, decision)
        int8 = file_of(folder, "int8")
        reference = score(None)
        tried = []
        for kept in _fp32_nodes(fused, config, max_fp32_nodes, score, Path(tmp)):
            _save(fused, int8, kept)
            tried.append(_measure(reference, score(OnnxModel(int8, config)), kept))
            if _within(tried[-1], bounds):
                break
    found = tried[-1] if _within(tried[-1], bounds) else tried[0]  # the file kept, or plain int8's figures
    decision["int8"] = found
    if len(tried) > 1:
        decision["int8_tried"] = [{"fp32_nodes": len(t["fp32_nodes"]), "drop_points": t["drop_points"],
                                   "agreement": t["agreement"]} for t in tried]
    drop = found["drop_points"]
    figures = (f"micro-F1 {-drop['micro_f1'] or 0.0:+.2f}, macro-F1 {-drop['macro_f1'] or 0.0:+.2f} points, agreement "
               f"{100 * found['agreement']:.2f} % on validation; bounds {bounds[0]}, {bounds[1]}")
    if _within(found, bounds):
        kept = f", {len(found['fp32_nodes'])} of its nodes in fp32" if found["fp32_nodes"] else ""
        os.remove(file_of(folder, "fp32"))
        decision.update(file=int8.name, precision="int8", why=f"int8 within the bounds{kept} ({figures})")
    else:
        also = ", ".join(str(len(t["fp32_nodes"])) for t in tried[1:])
        also = f"; so did int8 with {also} of its most sensitive nodes in fp32" if also else ""
        os.remove(int8)
        decision.update(file=file_of(folder, "fp32").name, precision="fp32",
                        why=f"int8 broke the bounds ({figures}){also}: fp32, PyTorch's labels")
    return write(folder, decision)


def _save(fused: Path, dest: Path, exclude: tuple[str, ...] | None) -> None:
    """The fused graph as `dest`, atomically: fp32 (exclude None), else int8 with `exclude` left in fp32."""
    import shutil
    import onnx
    from ..io import atomic_path
    from .onnx_runtime import quantize
    with atomic_path(dest) as staged:
        shutil.copy2(fused, staged) if exclude is None else quantize(fused, staged, exclude)
        onnx.checker.check_model(str(staged))


def _measure(reference: tuple, got: tuple, kept: tuple[str, ...]) -> dict:
    """An int8 candidate against PyTorch on validation: F1 points lost, label agreement, nodes left in fp32."""
    (micro, macro, labels, _), (micro8, macro8, labels8, _) = reference, got
    drop = {"micro_f1": round(100 * (micro - micro8), 3), "macro_f1": round(100 * (macro - macro8), 3)}
    return {"drop_points": drop,
            "agreement": round(sum(a == b for a, b in zip(labels, labels8)) / max(len(labels), 1), 4),
            "fp32_nodes": list(kept)}


def _within(candidate: dict, bounds: tuple[float, float]) -> bool:
    drop = candidate["drop_points"]
    return drop["micro_f1"] <= bounds[0] and drop["macro_f1"] <= bounds[1]


def _fp32_nodes(fused: Path, config, most: int, score, tmp: Path):
    """The nodes to leave in fp32, one candidate at a time: none; then, after a sensitivity pass, the 1, 2, 4, ...
    (up to `most`) that move the outputs most."""
    yield ()
    if most <= 0:
        return
    ranked = sensitive_nodes(fused, config, score, tmp)
    k = 1
    while True:
        yield tuple(ranked[:min(k, most)])
        if k >= most or k >= len(ranked):
            return
        k *= 2


SENSITIVITY_SENTENCES = 1000  # enough to rank the nodes: KL divergence is a mean over every sentence's probabilities


def sensitive_nodes(fused: Path, config, score, tmp: Path) -> list[str]:
    """The nodes `quantize` turns to int8, those that move the outputs most first: each quantized alone (all
    others fp32) and run on the first SENSITIVITY_SENTENCES validation sentences, ranked by the KL divergence of
    its probabilities from the fp32 graph's (as ONNX Runtime's own debugging tools compare a quantized model's
    activations with the float model's)."""
    import numpy as np
    from .onnx_runtime import OnnxModel, quantizable, quantize
    nodes = quantizable(fused)
    p = np.clip(score(OnnxModel(fused, config), SENSITIVITY_SENTENCES)[3], 1e-6, 1)
    divergence = {}
    for i, node in enumerate(nodes):
        one = quantize(fused, tmp / f"one-{i}.onnx", tuple(n for n in nodes if n != node))
        q = np.clip(score(OnnxModel(one, config), SENSITIVITY_SENTENCES)[3], 1e-6, 1)
        divergence[node] = float(np.mean(np.sum(p * np.log(p / q), axis=1)))
        one.unlink()
    return sorted(nodes, key=lambda n: -divergence[n])


def write(folder: Path, decision: dict) -> dict:
    from ..io import write_json
    write_json(Path(folder) / FILE, decision)
    return decision


def decide_or_warn(folder: Path, precision: str, bounds: tuple[float, float], score, retry_dir: str,
                   max_fp32_nodes: int = 0) -> dict:
    """decide, for the train stage: a model that cannot be exported is still saved (PyTorch serves it), with a
    warning that names the error and the command that tries again, instead of losing the trained weights."""
    import sys
    try:
        return decide(folder, precision, bounds, score, max_fp32_nodes)
    except Exception as e:  # noqa: BLE001 - torch.onnx, onnx and onnxruntime raise many kinds; the weights matter more
        for leftover in Path(folder).glob("model.*.onnx"):
            leftover.unlink()
        print(f"WARNING: the ONNX export failed ({type(e).__name__}: {' '.join(str(e).split())[:300]}); the model "
              f"is saved without it and runs through PyTorch. `python -m pubmed_rct export-onnx {retry_dir}` tries "
              "again.", file=sys.stderr)
        return write(folder, {"file": None, "precision": None, "why": f"the ONNX export failed: {type(e).__name__}"})


def test_report(folder: str, predict, test: tuple, results: dict, bounds: tuple[float, float]) -> dict:
    """For evaluate: what CPUs run (the folder's decision, made on validation) and its test scores against
    PyTorch's (`test`: true and PyTorch's labels; `predict(model)`: a model's test labels): F1, the points it
    costs, how many of PyTorch's labels it gives; a warning where test breaks the bounds validation kept (the
    decision stays: test only reports)."""
    import sys
    from ..modeling.model import trained_config
    from ..training.metrics import scores
    from .onnx_runtime import OnnxModel
    decision, file = read(folder), onnx_file(folder)
    out = {"cpu_inference": f"onnx {file.suffixes[0].lstrip('.')}" if file else "torch"}
    if decision and decision.get("int8"):
        drop = decision["int8"]["drop_points"]
        out.update(val_int8_micro_f1_drop=drop["micro_f1"], val_int8_macro_f1_drop=drop["macro_f1"],
                   val_int8_agreement=decision["int8"]["agreement"])
    if file is None:
        return out
    config, _, labels = trained_config(folder)
    y_true, y_torch = test
    y_onnx = predict(OnnxModel(file, config))
    s = scores(y_true, y_onnx, labels, "test")
    drop = {k: round(100 * (results[f"test_{k}_f1"] - s[f"test_{k}_f1"]), 3) for k in ("micro", "macro")}
    out.update(test_onnx_micro_f1=s["test_micro_f1"], test_onnx_macro_f1=s["test_macro_f1"],
               test_onnx_micro_f1_drop=drop["micro"], test_onnx_macro_f1_drop=drop["macro"],
               test_onnx_agreement=round(sum(a == b for a, b in zip(y_onnx, y_torch)) / max(len(y_torch), 1), 4))
    if drop["micro"] > bounds[0] or drop["macro"] > bounds[1]:
        print(f"WARNING: {file.name} loses {drop['micro']:.2f} micro-F1 and {drop['macro']:.2f} macro-F1 points on "
              f"test against PyTorch (bounds {bounds[0]}, {bounds[1]}; validation chose it: {describe(decision)})",
              file=sys.stderr)
    print(f"evaluate: CPUs run {file.name} ({describe(decision)}); on test: {out}")
    return out


def scorer(model, examples: list[dict], rows: list[dict], labels: list[str], context: str, pad_id: int):
    """For decide: score(None) scores `model` (PyTorch), score(onnx_model) an ONNX Runtime model, on the
    validation split's `examples` (gold labels in `rows`), or on the examples that hold its first `sample`
    sentences: (micro-F1, macro-F1, labels in row order, probabilities in row order)."""
    import numpy as np
    from ..modeling.model import predict_proba
    from ..training.metrics import scores
    label_id = {l: i for i, l in enumerate(labels)}

    def score(onnx_model, sample: int | None = None) -> tuple[float, float, list[int], np.ndarray]:
        chosen = examples
        if sample is not None:
            held = np.cumsum([len(e["rows"]) for e in examples])
            chosen = examples[:int(np.searchsorted(held, sample)) + 1]
        found, probs = predict_proba(onnx_model or model, chosen, context, pad_id, 256)
        order = np.argsort(found, kind="stable")
        found, probs = found[order], probs[order]
        predicted = probs.argmax(-1).tolist()
        s = scores([label_id[rows[r]["label"]] for r in found], predicted, labels, "val")
        return s["val_micro_f1"], s["val_macro_f1"], predicted, probs
    return score
