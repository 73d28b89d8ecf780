"""The MLflow pyfunc wrapper: `mlflow.pyfunc.load_model("runs:/<id>/model").predict(df)`."""
from __future__ import annotations

from pathlib import Path

import mlflow.pyfunc

from ..io import ROOT
from ..tracking.store import tracking_uri


class SentenceRoles(mlflow.pyfunc.PythonModel):
    """Input: a DataFrame with a `text` column (a sentence or a whole abstract per row).

    Output (params `output: sentences`, the default, as `mlflow models serve` answers): one row per sentence:
    `input` (row index), `sentence`, `label`, `probability`, `heading` (the section heading of a structured
    abstract the sentence stood under, or None), `heading_category` (its NLM category), `source` (`author`
    where the heading gave the label, else `model`), `error` (None). A text that cannot be labelled (empty,
    binary, not valid Unicode, too long) gives one row with only `input` and `error` saying why; the other
    rows are labelled.

    With `output: abstracts`: one row per input row, as MLflow's Spark UDF needs (`spark_udf` below): arrays
    `sentences`, `labels`, `probabilities`, `headings`, `sources`, and `error` ("" where a sentence has no heading
    and where there is no error). `relabel: true` has the model label structured abstracts too."""

    def load_context(self, context):
        from pubmed_rct.inference.predict import Labeler
        self.labeler = Labeler.load(context.artifacts["model_dir"])

    def predict(self, context, model_input, params=None):
        import pandas as pd
        params = {**PARAMS, **(params or {})}
        if params["output"] not in ("sentences", "abstracts"):
            from mlflow.exceptions import MlflowException
            raise MlflowException.invalid_parameter_value(
                f"params output: {params['output']!r} is not one of 'sentences', 'abstracts'")
        texts = list(model_input["text"]) if hasattr(model_input, "columns") else list(model_input)
        labelled = self.labeler.label_each(texts, relabel=bool(params["relabel"]))
        if params["output"] == "abstracts":
            return pd.DataFrame([per_input(sentences) for sentences in labelled], columns=list(ABSTRACT_FIELDS))
        rows = []
        for i, sentences in enumerate(labelled):
            if isinstance(sentences, Exception):
                rows.append({"input": i, "error": f"row {i}: {sentences}"})
            else:
                rows.extend({"input": i, **s, "error": None} for s in sentences)
        frame = pd.DataFrame(rows, columns=_columns())
        # A bad row has no probability: None, which JSON writes as null. Left to pandas it is NaN in a float
        # column, which MLflow's scoring server writes as a bare NaN, and no JSON parser takes the answer.
        return frame.astype(object).where(frame.notna(), None)


def _columns() -> list[str]:
    from .predict import SENTENCE_FIELDS
    return ["input", *SENTENCE_FIELDS, "error"]
PARAMS = {"output": "sentences", "relabel": False}
# One row per input for output: abstracts, with its Spark type (spark_udf's result_type).
ABSTRACT_FIELDS = {"sentences": "array<string>", "labels": "array<string>", "probabilities": "array<double>",
                   "headings": "array<string>", "sources": "array<string>", "error": "string"}
SPARK_RESULT_TYPE = "struct<" + ",".join(f"{k}:{v}" for k, v in ABSTRACT_FIELDS.items()) + ">"


def per_input(sentences) -> dict:
    if isinstance(sentences, Exception):
        return {"sentences": [], "labels": [], "probabilities": [], "headings": [], "sources": [],
                "error": str(sentences)}
    return {"sentences": [s["sentence"] for s in sentences], "labels": [s["label"] for s in sentences],
            "probabilities": [s["probability"] for s in sentences], "headings": [s["heading"] or "" for s in sentences],
            "sources": [s["source"] for s in sentences], "error": ""}  # "" not None: Spark would show "nan", "None"


def spark_udf(spark, model_uri: str, relabel: bool = False):
    """MLflow's own Spark UDF over a logged model, one result per row (a struct of arrays, ABSTRACT_FIELDS):
    `df.withColumn("roles", spark_udf(spark, "models:/pubmed-rct@champion")("text"))`. The same as
    `mlflow.pyfunc.spark_udf(spark, uri, env_manager="local", params={"output": "abstracts"},
    result_type=SPARK_RESULT_TYPE)`."""
    return mlflow.pyfunc.spark_udf(spark, model_uri, env_manager="local", result_type=SPARK_RESULT_TYPE,
                                   params={"output": "abstracts", "relabel": relabel})


# What the model needs at serving time, pinned to the versions it was trained and evaluated with.
REQUIREMENTS = ("torch", "transformers", "tokenizers", "safetensors", "pysbd", "pyarrow", "pandas", "numpy",
                "scikit-learn", "mlflow")
EXAMPLE = ("Asthma is common in children. We randomised 120 children to inhaled budesonide or placebo. "
           "Symptom-free days increased with budesonide (p < 0.01). Budesonide is effective.")


def pinned_requirements(model_dir: str | Path | None = None) -> list[str]:
    """REQUIREMENTS at the installed versions, and onnxruntime where the model folder holds an ONNX file."""
    from importlib.metadata import PackageNotFoundError, version

    from .onnx_runtime import find
    out = []
    for name in REQUIREMENTS + (("onnxruntime",) if model_dir and find(model_dir) else ()):
        try:
            out.append(f"{name}=={version(name)}")
        except PackageNotFoundError:
            continue
    return out


def signature():
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, ParamSchema, ParamSpec, Schema
    return ModelSignature(
        inputs=Schema([ColSpec("string", "text")]),
        outputs=Schema([ColSpec("long", "input"), ColSpec("string", "sentence"), ColSpec("string", "label"),
                        ColSpec("double", "probability"), ColSpec("string", "heading", required=False),
                        ColSpec("string", "heading_category", required=False), ColSpec("string", "source"),
                        ColSpec("string", "error", required=False)]),
        params=ParamSchema([ParamSpec("output", "string", PARAMS["output"]),
                            ParamSpec("relabel", "boolean", PARAMS["relabel"])]))


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
                code_paths=[str(ROOT / "pubmed_rct")], pip_requirements=pinned_requirements(staged),
                signature=signature(), input_example=pd.DataFrame({"text": [EXAMPLE]}))
    # log_model inside start_run ends the run as FINISHED when the block exits; evaluate sets it last.
    return info.model_uri
