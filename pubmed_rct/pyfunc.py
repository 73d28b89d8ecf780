"""The MLflow pyfunc wrapper: `mlflow.pyfunc.load_model("runs:/<id>/model").predict(df)`."""
from __future__ import annotations

from pathlib import Path

import mlflow.pyfunc

from .io import ROOT
from .tracking import tracking_uri


class SentenceRoles(mlflow.pyfunc.PythonModel):
    """Input: a DataFrame with a `text` column (a sentence or a whole abstract per row).
    Output: one row per sentence: `input` (row index), `sentence`, `label`, `probability`, `heading` (the
    section heading of a structured abstract the sentence stood under, or None)."""

    def load_context(self, context):
        from pubmed_rct.predict import Labeler
        self.labeler = Labeler.load(context.artifacts["model_dir"])

    def predict(self, context, model_input, params=None):
        import pandas as pd
        texts = list(model_input["text"]) if hasattr(model_input, "columns") else list(model_input)
        rows = []
        for i, sentences in enumerate(self.labeler.label(texts)):
            rows.extend({"input": i, **s} for s in sentences)
        return pd.DataFrame(rows, columns=["input", "sentence", "label", "probability", "heading"])


def log_model(run_id: str, model_dir: str | Path) -> None:
    """Log the trained model as an MLflow pyfunc that labels raw text (sentences or whole abstracts)."""
    mlflow.set_tracking_uri(tracking_uri())
    with mlflow.start_run(run_id=run_id):
        mlflow.pyfunc.log_model(
            name="model", python_model=SentenceRoles(), artifacts={"model_dir": str(model_dir)},
            code_paths=[str(ROOT / "pubmed_rct")],
            pip_requirements=["torch", "transformers", "pysbd", "pyarrow", "scikit-learn"])
    # log_model inside start_run ends the run as FINISHED when the block exits; evaluate sets it last.
