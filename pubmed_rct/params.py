"""params.yaml, read once and typed: one frozen dataclass per section, checked as it is built.

An unknown key (a typo such as `learning_rat`), a missing one, a value of the wrong type or outside its
allowed words fails with the key named (ParamsError: the stages exit 2 with that one line). Defaults live
only in params.yaml: no field here has one. Each stage takes the sections it needs; the rest of the package
takes plain named arguments.

Library: pydantic's dataclasses (already installed with MLflow): the type checks, the casts of YAML's
scalars and the refusal of unknown keys come from the annotations, not from code of this project's own.
"""
from __future__ import annotations

import dataclasses
import difflib
import typing
from dataclasses import asdict, fields, is_dataclass
from pathlib import Path
from typing import Annotated, Literal, Union

import yaml
from pydantic import ConfigDict, Field, TypeAdapter, ValidationError, field_validator
from pydantic.dataclasses import dataclass

from . import choices

FILE = "params.yaml"
_STRICT = ConfigDict(extra="forbid", coerce_numbers_to_str=True)
Positive = Annotated[int, Field(gt=0)]
Rate = Annotated[float, Field(ge=0)]
Switch = Literal[choices.SWITCH]


class ParamsError(ValueError):
    """params.yaml cannot be read or holds a bad value; the message names the key and what to do."""


def _word(value):
    """YAML reads true/false as booleans; the switches are kept as lower-case words."""
    return str(value).lower() if isinstance(value, bool) else value


@dataclass(frozen=True, config=_STRICT)
class Data:
    source: str                    # hub dataset id | a local copy of one | a folder or URL of train/dev/test.txt
    revision: Union[str, None]     # hub commit of source; "" or null: the newest


@dataclass(frozen=True, config=_STRICT)
class Downsample:
    strategy: Literal[choices.DOWNSAMPLING]
    cap: Union[Positive, Literal["median"]]


@dataclass(frozen=True, config=_STRICT)
class Tokenize:
    context_max_length: Positive


@dataclass(frozen=True, config=_STRICT)
class Train:
    learning_rate: Annotated[float, Field(gt=0)]
    batch_size: Positive           # the global batch (all processes together)
    num_epochs: Positive
    weight_decay: Rate
    warmup_ratio: Annotated[float, Field(ge=0, le=1)]
    max_grad_norm: Rate                # 0: no clipping
    precision: Literal[choices.TRAIN_PRECISIONS]
    compile: Literal[choices.COMPILE]
    cuda_graphs: Switch
    pad_multiple: Positive
    group_by_length: bool
    class_weights: Literal[choices.CLASS_WEIGHTS]
    log_every_steps: Positive
    checkpoint_every_steps: Positive

    _words = field_validator("compile", "cuda_graphs", mode="before")(_word)


@dataclass(frozen=True, config=_STRICT)
class Export:
    onnx: Literal[choices.EXPORTS]
    max_micro_f1_drop: float  # points on validation: beyond either bound, CPUs run fp32 instead of int8
    max_macro_f1_drop: float
    max_fp32_nodes: Annotated[int, Field(ge=0)]  # where int8 breaks the bounds: nodes it may leave in fp32 (0: none)


@dataclass(frozen=True, config=_STRICT)
class Evaluate:
    batch_size: Positive


@dataclass(frozen=True, config=_STRICT)
class Tracking:
    experiment: Annotated[str, Field(min_length=1)]
    required: bool
    registered_model: Union[str, None]  # "" or null: no registration
    promote_metric: Annotated[str, Field(min_length=1)]


@dataclass(frozen=True, config=_STRICT)
class Params:
    seed: int
    use_downsampling: bool
    context: Literal[choices.CONTEXTS]
    model: str
    max_length: Annotated[int, Field(gt=2)]  # [CLS] and [SEP] included
    data: Data
    downsample: Downsample
    tokenize: Tokenize
    train: Train
    export: Export
    evaluate: Evaluate
    tracking: Tracking


def load(path: str | Path = FILE) -> Params:
    """The whole file, checked; ParamsError names every bad key in one line."""
    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ParamsError(f"{path}: not found; run from the project folder (the one with dvc.yaml)") from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        raise ParamsError(f"{path}: cannot be read as YAML ({e})") from e
    return parse(raw if raw is not None else {}, str(path))


def parse(raw, where: str = FILE) -> Params:
    try:
        return TypeAdapter(Params).validate_python(raw)
    except ValidationError as e:
        raise ParamsError(_explain(e, where)) from None


def _explain(error: ValidationError, where: str) -> str:
    """One line: each bad key as `params.yaml train.batch_size: 'many' is not valid: ...`."""
    said: dict[str, list[str]] = {}
    unknown: dict[str, list[str]] = {}
    for e in error.errors():
        key, kind = _key(e["loc"]), e["type"]
        if kind in ("extra_forbidden", "unexpected_keyword_argument"):
            section, _, name = key.rpartition(".")
            unknown.setdefault(section, []).append(name)
            continue
        if kind == "missing":
            why = "missing; add it (the README's params table lists every key)"
        elif kind.startswith("dataclass"):
            key, why = key or "(the file)", f"should be a section of keys, not {e['input']!r}"
        else:  # a union (downsample.cap) says what each of its branches wants
            why = f"{e['msg'][0].lower()}{e['msg'][1:]}"
            why = f"{e['input']!r} is not valid: {why}" if key not in said else why
        if why not in said.setdefault(key, []):
            said[key].append(why)
    for section, names in unknown.items():
        known = [f.name for f in fields(_section(section))]
        guesses = [f"{n} (did you mean {close[0]}?)" if (close := difflib.get_close_matches(n, known, 1)) else n
                   for n in names]
        said[section or "(top level)"] = [f"unknown key(s) {', '.join(guesses)}; the known keys are {', '.join(known)}"]
    return "; ".join(f"{where} {key}: {' or '.join(whys)}" for key, whys in said.items())


def _key(loc: tuple) -> str:
    """The dotted key of an error's location, less pydantic's union and validator steps (`int`, `literal[...]`)."""
    cls, parts = Params, []
    for step in loc:
        if not is_dataclass(cls) or not isinstance(step, str):
            break
        parts.append(step)
        hint = typing.get_type_hints(cls, include_extras=False).get(step)
        if hint is None:  # an unknown key
            break
        cls = hint
    return ".".join(parts)


def _section(dotted: str) -> type:
    cls = Params
    for part in filter(None, dotted.split(".")):
        cls = typing.get_type_hints(cls)[part]
    return cls


def shipped_train(**overrides) -> Train:
    """The project's own params.yaml train section with `overrides`: for benchmarks and tests, which train
    outside a stage (the package keeps no defaults of its own)."""
    from .io import ROOT
    return dataclasses.replace(load(ROOT / FILE).train, **overrides)


def run_params(p: Params, source: dict) -> dict:
    """The params an MLflow run logs and the model card shows: built here only, for train and evaluate."""
    return {"model": p.model, "context": p.context, "max_length": p.max_length, "seed": p.seed,
            "use_downsampling": p.use_downsampling, "data_source": source["source"],
            "data_revision": source.get("revision") or "", "data_commit": source.get("commit") or "",
            "number_form": source["number_form"], "context_max_length": p.tokenize.context_max_length,
            **asdict(p.train)}
