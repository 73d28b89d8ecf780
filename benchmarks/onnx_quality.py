"""Does int8 change the labels? Each inference path of a trained model against PyTorch fp32, on real abstracts.

For each trained model folder: labels of the test split (its own sentences, as evaluation reads them) by
PyTorch fp32, PyTorch bf16 (what `Labeler` does on a CPU with native bf16), ONNX Runtime fp32 and ONNX Runtime
int8 (`pubmed_rct.onnx_inference.export`); label agreement with PyTorch fp32, and micro / macro F1 of each.

  python benchmarks/context_modes.py --model <MiniLM> --modes none abstract --seeds 1 --save /tmp/trained
  python benchmarks/onnx_quality.py /tmp/trained/none-baseline-seed1 /tmp/trained/abstract-baseline-seed1
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from pubmed_rct.corpus.sources import abstracts_of, read_text_file
from pubmed_rct.training.metrics import scores
from pubmed_rct.modeling.model import cpu_has_bf16, load_tokenizer, load_trained, trained_config
from pubmed_rct.inference.onnx_runtime import OnnxModel, export
from pubmed_rct.inference.predict import Labeler


def labels_of(labeler: Labeler, split: list[list[str]]) -> list[str]:
    return [s["label"] for abstract in labeler.label_sentences(split) for s in abstract]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("models", nargs="+", help="trained model folders (context_modes.py --save, or models/model)")
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared/data/nicta-piboso/test.txt"))
    args = ap.parse_args()
    rows = read_text_file(args.data)
    groups = abstracts_of(rows)
    split = [[rows[i]["text"] for i in g] for g in groups]
    gold = [rows[i]["label"] for g in groups for i in g]
    print(f"{args.data}: {len(groups)} abstracts, {len(gold)} sentences")
    print("| model | path | agreement with torch fp32 | micro-F1 | macro-F1 | Δ micro (points) | Δ macro (points) |")
    print("|---|---|---|---|---|---|---|")
    for folder in args.models:
        config, mode, labels = trained_config(folder)
        tokenizer = load_tokenizer(folder)
        model = load_trained(folder)[0]
        paths = {"torch fp32": Labeler(model, tokenizer, mode, labels, precision="fp32")}
        with tempfile.TemporaryDirectory() as tmp:
            for precision in ("fp32", "int8"):
                paths[f"ORT {precision}"] = Labeler(OnnxModel(export(folder, precision, tmp), config), tokenizer,
                                                    mode, labels)
            predicted = {name: labels_of(labeler, split) for name, labeler in paths.items()}
        names = ["torch fp32", "ORT fp32", "ORT int8"]
        if cpu_has_bf16():  # what Labeler's PyTorch path does on this CPU
            predicted["torch bf16"] = labels_of(Labeler(load_trained(folder)[0], tokenizer, mode, labels), split)
            names.insert(1, "torch bf16")
        reference = np.asarray(predicted["torch fp32"])
        base = None
        for name in names:
            s = scores([labels.index(g) for g in gold], [labels.index(p) for p in predicted[name]], labels, "test")
            micro, macro = 100 * s["test_micro_f1"], 100 * s["test_macro_f1"]
            base = base or (micro, macro)
            agree = float((np.asarray(predicted[name]) == reference).mean())
            print(f"| {Path(folder).name} ({mode}) | {name} | {100 * agree:.2f} % | {micro / 100:.4f} | "
                  f"{macro / 100:.4f} | {micro - base[0]:+.2f} | {macro - base[1]:+.2f} |", flush=True)


if __name__ == "__main__":
    main()
