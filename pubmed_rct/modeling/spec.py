"""The model's own settings, one owner: what the train stage writes into config.json beside the weights and every
consumer (predict, serve, the pyfunc, the label job, evaluate) reads back, so that raw text is read as the
training data was. There are no defaults here: a setting a model folder lacks is an error that names it.

  context              none (each sentence alone) | abstract (the whole abstract, each sentence at its [SEP])
  sentence_max_length  word pieces per sentence, [CLS]/[SEP] included (params.yaml max_length)
  context_max_length   tokens per input in context abstract (params.yaml tokenize.context_max_length)
  number_form          digits | @ (the training data's numbers: PubMed 20k RCT writes them as @)
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from ..choices import CONTEXTS, NUMBER_FORMS

OLD_NAMES = {"context": "sentence_context"}  # models trained before 2026-12 name their context so; they load


@dataclass(frozen=True)
class Spec:
    context: str
    sentence_max_length: int
    context_max_length: int
    number_form: str

    def __post_init__(self):
        if self.context not in CONTEXTS:
            raise ValueError(f"context {self.context!r} is not one of {', '.join(CONTEXTS)}")
        if self.number_form not in NUMBER_FORMS:
            raise ValueError(f"number_form {self.number_form!r} is not one of {', '.join(NUMBER_FORMS)}")


def write(config, spec: Spec) -> None:
    """Record the spec in a transformers config (saved as config.json with the model)."""
    for key, value in asdict(spec).items():
        setattr(config, key, value)


def read(config, where: str | Path = "the model") -> Spec:
    """The spec a config records; a missing setting is a ValueError naming it and the folder."""
    values = {}
    for key in Spec.__dataclass_fields__:
        value = getattr(config, key, None)
        if value is None and key in OLD_NAMES:
            value = getattr(config, OLD_NAMES[key], None)
        if value is None:
            raise ValueError(f"{where}: config.json has no '{key}'; it was not trained by this project (or by a "
                             "version that did not record it): train it again with `dvc repro train`")
        values[key] = value
    return Spec(**values)
