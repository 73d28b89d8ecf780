"""params.yaml read once and typed: every section checked where it is built, the key named in the one-line
error, and a stage exits 2 on it before any work."""
import copy
import sys

import pytest
import yaml

from conftest import ROOT, run
from pubmed_rct import params

SHIPPED = yaml.safe_load((ROOT / "params.yaml").read_text())


def changed(**keys):
    """The shipped params with dotted keys (a__b for a.b) set, or removed where the value is ...; parse them."""
    raw = copy.deepcopy(SHIPPED)
    for dotted, value in keys.items():
        *parents, last = dotted.split("__")
        node = raw
        for key in parents:
            node = node[key]
        if value is ...:
            del node[last]
        else:
            node[last] = value
    return params.parse(raw)


def test_the_shipped_file_reads_as_typed_sections():
    p = params.load(ROOT / "params.yaml")
    assert (p.train.learning_rate, p.train.batch_size, p.train.num_epochs, p.max_length) == (2e-5, 32, 3, 128)
    assert (p.context, p.train.cuda_graphs, p.export.onnx, p.downsample.cap) == ("none", "false", "int8", "median")
    assert changed(train__learning_rate="1e-4", train__compile=True).train.learning_rate == 1e-4  # YAML's casts
    assert changed(train__compile=True).train.compile == "true" and changed(downsample__cap=40).downsample.cap == 40


@pytest.mark.parametrize("keys, message", [
    ({"train__learning_rat": 1e-4},
     "params.yaml train: unknown key(s) learning_rat (did you mean learning_rate?); the known keys are "
     "learning_rate, batch_size,"),
    ({"train__batch_size": "many"}, "params.yaml train.batch_size: 'many' is not valid: input should be a valid integer"),
    ({"train__cuda_graphs": "yes"}, "params.yaml train.cuda_graphs: 'yes' is not valid: input should be 'auto', 'true' or"),
    ({"downsample__cap": "mean"}, "params.yaml downsample.cap: 'mean' is not valid: input should be a valid integer, "
                                  "unable to parse string as an integer or input should be 'median'"),
    ({"context": "pairs"}, "params.yaml context: 'pairs' is not valid: input should be 'none' or 'abstract'"),
    ({"export__onnx": "int4"}, "params.yaml export.onnx: 'int4' is not valid: input should be 'int8', 'fp32' or 'none'"),
    ({"train__class_weights": "inverse"}, "params.yaml train.class_weights: 'inverse' is not valid"),
    ({"seed": ...}, "params.yaml seed: missing; add it"),
    ({"tracking": 5}, "params.yaml tracking: should be a section of keys, not 5"),
    ({"modl": "x"}, "params.yaml (top level): unknown key(s) modl (did you mean model?); the known keys are seed,"),
])
def test_a_bad_value_names_its_key(keys, message):
    with pytest.raises(params.ParamsError) as e:
        changed(**keys)
    assert str(e.value).startswith(message) and "\n" not in str(e.value)


def test_a_stage_exits_2_with_one_line_on_bad_params(tmp_path):
    raw = copy.deepcopy(SHIPPED)
    raw["train"]["learning_rat"] = raw["train"].pop("learning_rate")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    r = run([sys.executable, str(ROOT / "stages/download.py")], tmp_path, check=False)
    assert r.returncode == 2 and r.stderr.strip().splitlines() == [
        "error: params.yaml train.learning_rate: missing; add it (the README's params table lists every key); "
        "params.yaml train: unknown key(s) learning_rat (did you mean learning_rate?); the known keys are "
        "learning_rate, batch_size, num_epochs, weight_decay, warmup_ratio, max_grad_norm, precision, compile, "
        "cuda_graphs, pad_multiple, group_by_length, class_weights, log_every_steps, checkpoint_every_steps"], r.stderr
    assert not (tmp_path / "data").exists()
    (tmp_path / "params.yaml").write_text("train: [unclosed\n")
    r = run([sys.executable, str(ROOT / "stages/prepare.py")], tmp_path, check=False)
    assert r.returncode == 2 and r.stderr.startswith("error: params.yaml: cannot be read as YAML"), r.stderr


def test_shipped_train_is_the_files_section_with_overrides():
    assert params.shipped_train(batch_size=4) == params.load(ROOT / "params.yaml").train.__class__(
        **{**SHIPPED["train"], "batch_size": 4})
    with pytest.raises(ValueError, match="precision"):  # pydantic checks a replaced value too
        params.shipped_train(precision="fp16")


def test_the_allowed_words_are_the_packages_own():
    """params.py names the words in its annotations (importing the modules that define them would make every
    stage depend on them in dvc.yaml); this keeps the two lists one."""
    import typing
    from pubmed_rct.modeling.encoding import CONTEXTS
    from pubmed_rct.inference.onnx_runtime import PRECISIONS
    from pubmed_rct.corpus.sampling import STRATEGIES, WEIGHTINGS
    words = lambda cls, key: typing.get_args(typing.get_type_hints(cls)[key])  # noqa: E731
    assert words(params.Params, "context") == CONTEXTS
    assert words(params.Downsample, "strategy") == STRATEGIES
    assert words(params.Train, "class_weights") == WEIGHTINGS
    assert words(params.Export, "onnx") == (*PRECISIONS, "none")
