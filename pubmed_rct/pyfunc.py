"""The MLflow pyfunc wrapper: `mlflow.pyfunc.load_model("runs:/<id>/model").predict(df)`."""
from __future__ import annotations

import mlflow.pyfunc


class SentenceRoles(mlflow.pyfunc.PythonModel):
    """Input: a DataFrame with a `text` column (a sentence or a whole abstract per row).
    Output: one row per sentence: `input` (row index), `sentence`, `label`, `probability`."""

    def load_context(self, context):
        from pubmed_rct.predict import Labeler
        self.labeler = Labeler.load(context.artifacts["model_dir"])

    def predict(self, context, model_input, params=None):
        import pandas as pd
        texts = list(model_input["text"]) if hasattr(model_input, "columns") else list(model_input)
        rows = []
        for i, sentences in enumerate(self.labeler.label(texts)):
            rows.extend({"input": i, **s} for s in sentences)
        return pd.DataFrame(rows, columns=["input", "sentence", "label", "probability"])
