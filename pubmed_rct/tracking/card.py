"""The model card: README.md for a trained model, written by evaluate from what the pipeline recorded and
measured (data, params, test scores, lineage), never by hand."""
from __future__ import annotations


def _table(header: tuple[str, ...], rows: list[tuple]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header),
            *("| " + " | ".join(str(c) for c in row) + " |" for row in rows)]


def model_card(source: dict, data: dict, params: dict, train: dict, results: dict, labels: list[str],
               lineage: dict) -> str:
    """Markdown: `source` is data/raw/source.json, `data` metrics/data.json, `params` the run's params,
    `train` metrics/train.json, `results` metrics/eval.json, `lineage` commit / experiment / run / tracking."""
    context = params.get("context", "none")
    out = [f"# Sentence roles in medical abstracts: {params.get('model')} fine-tuned", "",
           "Labels each sentence of an abstract with its rhetorical role "
           f"({', '.join(labels)}). Context: `{context}` "
           f"({'each sentence alone' if context == 'none' else 'the whole abstract, classified at each sentence'}).",
           "", "## Data", ""]
    revision = source.get("revision") or "-"
    out += _table(("", "value"), [
        ("source", f"`{source.get('source')}`"), ("revision", f"`{revision}`"),
        ("resolved commit", f"`{source.get('commit') or '-'}`"), ("number form", source.get("number_form", "-")),
        ("train sentences (in the loss)", f"{data.get('train_sentences', '-'):,}"),
        ("validation sentences", f"{data.get('validation_sentences', '-'):,}"),
        ("test sentences", f"{data.get('test_sentences', '-'):,}")])
    out += ["", "## Training", ""]
    keys = ("model", "context", "learning_rate", "batch_size", "num_epochs", "max_length", "seed",
            "use_downsampling", "class_weights", "precision")
    out += _table(("param", "value"), [(k, f"`{params[k]}`") for k in keys if k in params])
    out += ["", f"Trained {train.get('train_steps', '-')} steps in {train.get('train_runtime', 0):.0f} s "
                f"({train.get('train_samples_per_second', 0):.1f} sentences/s), final train loss "
                f"{train.get('train_loss', float('nan')):.4f}.", "", "## Test scores", ""]
    out += _table(("metric", "value"), [(k, f"{results[k]:.4f}") for k in (
        "test_micro_f1", "test_macro_f1", "test_weighted_f1", "test_accuracy", "val_micro_f1", "val_macro_f1")
        if k in results])
    if "cpu_inference" in results:
        out += ["", f"On CPUs: {cpu_line(results)}"]
    out += ["", "Per class (test F1):", ""]
    out += _table(("label", "F1"), [(label, f"{results.get(f'test_f1_' + label.replace(' ', '_'), 0):.4f}")
                                    for label in labels])
    out += ["", "## Lineage", ""]
    out += _table(("", "value"), [(k, f"`{v}`") for k, v in lineage.items() if v])
    out += ["", "## Intended use and limits", "",
            "- For skimming and searching abstracts of randomised controlled trials by sentence role: a reading "
            "aid, not a clinical decision tool.",
            "- Scores hold for abstracts like the test split above; other fields, languages, full texts or "
            "unstructured prose outside abstracts will do worse.",
            "- The rarest roles are the least reliable (see the per-class F1); check before relying on them.",
            f"- Raw text is split into sentences by rules (pysbd with the project's rules) and, where the data "
            f"had numbers replaced by `@` (number form: {source.get('number_form', '-')}), numbers are replaced "
            "the same way before labelling.", ""]
    return "\n".join(out)


def cpu_line(results: dict) -> str:
    """What CPUs run (the model folder's inference.json, decided on validation) and what it costs on test."""
    path = results["cpu_inference"]
    parts = [f"`{path}`"]
    if "val_int8_micro_f1_drop" in results:
        parts.append(f"int8 on validation: {-results['val_int8_micro_f1_drop']:+.2f} micro-F1, "
                     f"{-results['val_int8_macro_f1_drop']:+.2f} macro-F1 points against PyTorch")
    if "test_onnx_micro_f1" in results:
        parts.append(f"on test: micro-F1 {results['test_onnx_micro_f1']:.4f} ({-results['test_onnx_micro_f1_drop']:+.2f}"
                     f"), macro-F1 {results['test_onnx_macro_f1']:.4f} ({-results['test_onnx_macro_f1_drop']:+.2f}), "
                     f"{100 * results['test_onnx_agreement']:.2f} % of PyTorch's labels")
    return "; ".join(parts) + "."
