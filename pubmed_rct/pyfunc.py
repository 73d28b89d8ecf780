"""The MLflow pyfunc wrapper: `mlflow.pyfunc.load_model("runs:/<id>/model").predict(df)`."""
from __future__ import annotations

from pathlib import Path

import mlflow.pyfunc

from .io import ROOT
from .tracking import tracking_uri


class SentenceRoles(mlflow.pyfunc.PythonModel):
    """Input: a DataFrame with a `text` column (a sentence or a whole abstract per row).
    Output: one row per sentence: `input` (row index), `sentence`, `label`, `probability`, `heading` (the
    section heading of a structured abstract the sentence stood under, or None), `error` (None). A text that
    cannot be labelled (empty, binary, not valid Unicode, too long) gives one row with only `input` and `error`
    saying why; the other rows are labelled."""

    def load_context(self, context):
        from pubmed_rct.predict import Labeler
        self.labeler = Labeler.load(context.artifacts["model_dir"])

    def predict(self, context, model_input, params=None):
        import pandas as pd
        texts = list(model_input["text"]) if hasattr(model_input, "columns") else list(model_input)
        rows = []
        for i, sentences in enumerate(self.labeler.label_each(texts)):
            if isinstance(sentences, Exception):
                rows.append({"input": i, "error": f"row {i}: {sentences}"})
            else:
                rows.extend({"input": i, **s, "error": None} for s in sentences)
        return pd.DataFrame(rows, columns=COLUMNS)


COLUMNS = ["input", "sentence", "label", "probability", "heading", "error"]


# What the model needs at serving time, pinned to the versions it was trained and evaluated with.
REQUIREMENTS = ("torch", "transformers", "tokenizers", "safetensors", "pysbd", "pyarrow", "pandas", "numpy",
                "scikit-learn", "mlflow")
EXAMPLE = ("Asthma is common in children. We randomised 120 children to inhaled budesonide or placebo. "
           "Symptom-free days increased with budesonide (p < 0.01). Budesonide is effective.")


def pinned_requirements() -> list[str]:
    from importlib.metadata import PackageNotFoundError, version
    out = []
    for name in REQUIREMENTS:
        try:
            out.append(f"{name}=={version(name)}")
        except PackageNotFoundError:
            continue
    return out


def signature():
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema
    return ModelSignature(
        inputs=Schema([ColSpec("string", "text")]),
        outputs=Schema([ColSpec("long", "input"), ColSpec("string", "sentence"), ColSpec("string", "label"),
                        ColSpec("double", "probability"), ColSpec("string", "heading", required=False),
                        ColSpec("string", "error", required=False)]))


def log_model(run_id: str, model_dir: str | Path, card: str | Path | None = None) -> str:
    """Log the trained model as an MLflow pyfunc that labels raw text (sentences or whole abstracts), with
    its model card as README.md in the model folder; returns the logged model's URI."""
    import shutil
    import tempfile
    import pandas as pd
    mlflow.set_tracking_uri(tracking_uri())
    with tempfile.TemporaryDirectory() as tmp:
        staged = Path(tmp) / "model"
        shutil.copytree(model_dir, staged)
        if card:
            shutil.copy2(card, staged / "README.md")
        with mlflow.start_run(run_id=run_id):
            info = mlflow.pyfunc.log_model(
                name="model", python_model=SentenceRoles(), artifacts={"model_dir": str(staged)},
                code_paths=[str(ROOT / "pubmed_rct")], pip_requirements=pinned_requirements(),
                signature=signature(), input_example=pd.DataFrame({"text": [EXAMPLE]}))
    # log_model inside start_run ends the run as FINISHED when the block exits; evaluate sets it last.
    return info.model_uri
