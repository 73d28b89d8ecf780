"""Command-line pieces the wings' commands share: numbers checked by argparse before any work, and the model
options (a folder, a model URI or an MLflow run; the backend)."""
from __future__ import annotations

import argparse

from .choices import BACKENDS

MODEL_HELP = ("a model folder written by the train stage, or a model in MLflow: models:/pubmed-rct@champion, "
              "models:/pubmed-rct/3, runs:/<run id>/model")
BACKEND_HELP = ("auto: on CPU the ONNX Runtime file the model folder's inference.json chose (int8 where its "
                "validation kept the bounds, else fp32), PyTorch where there is none; PyTorch on GPU | onnx | torch")


def whole_number(low: int, high: int | None = None):
    """An argparse type: a whole number from `low` (to `high`), checked before any work."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < low or (high is not None and value > high):
            bound = f"from {low} to {high}" if high is not None else f"of at least {low}"
            raise argparse.ArgumentTypeError(f"{value} is out of range; give a whole number {bound}")
        return value
    return parse


POSITIVE, PORT = whole_number(1), whole_number(1, 65535)


def add_model(parser, backend: bool = True) -> None:
    """--model and --run-id (and --backend): which trained model a command runs."""
    parser.add_argument("--model", default="models/model", help=MODEL_HELP)
    parser.add_argument("--run-id", help="use the model logged with this MLflow run instead")
    if backend:
        parser.add_argument("--backend", choices=BACKENDS, default="auto", help=BACKEND_HELP)
