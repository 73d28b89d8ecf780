"""Context mode `abstract` end to end, and how inputs are built for odd abstracts."""
import json
import shutil

import pyarrow.parquet as pq
import pytest
import yaml

from conftest import ABSTRACT, make_project, run
from pubmed_rct.modeling.model import load_trained
from pubmed_rct.inference.predict import Labeler


@pytest.fixture(scope="module")
def abstract_project(tmp_path_factory, tiny_bert):
    p = make_project(tmp_path_factory.mktemp("ctx") / "project", tiny_bert, context="abstract")
    run(["dvc", "repro"], p, {"MLFLOW_TRACKING_URI": ""})
    return p


def test_pipeline_in_abstract_mode_reports_the_same_metrics(abstract_project):
    p = abstract_project
    tok = json.loads((p / "metrics/tokenize.json").read_text())
    assert tok["context"] == "abstract" and tok["train_inputs"] == 48 and tok["train_sentences"] == 284
    table = pq.read_table(p / "data/tokenized/train.parquet")
    assert sum(len(r) for r in table.column("rows").to_pylist()) == 284
    ev = json.loads((p / "metrics/eval.json").read_text())
    assert {"val_macro_f1", "val_micro_f1", "test_macro_f1", "test_micro_f1", "test_accuracy"} <= set(ev)
    assert ev["test_micro_f1"] > 0.3  # learned something beyond chance (0.2)
    tr, params = json.loads((p / "metrics/train.json").read_text()), yaml.safe_load((p / "params.yaml").read_text())
    epochs, batch = params["train"]["num_epochs"], params["train"]["batch_size"]
    assert tr["train_samples"] == 284 * epochs  # labelled sentences seen, as in mode none
    # a step takes whole abstracts up to `batch` labelled sentences (48 abstracts of ~6 here, batch 8): not `batch` abstracts
    assert 284 * epochs / batch <= tr["train_steps"] <= 48 * epochs


def test_the_saved_model_records_its_context_and_refuses_others(abstract_project, tmp_path):
    model_dir = abstract_project / "models/model"
    config = json.loads((model_dir / "config.json").read_text())
    assert config["context"] == "abstract" and "sentence_context" not in config
    with pytest.raises(ValueError, match="trained with context 'abstract', input was built for 'none'"):
        load_trained(model_dir, context="none")
    labelled = Labeler.load(model_dir).label([ABSTRACT, "One sentence only."])
    assert len(labelled[0]) == 5 and len(labelled[1]) == 1
    old = tmp_path / "old"  # a model trained before the attribute was renamed
    shutil.copytree(model_dir, old)
    config["sentence_context"] = config.pop("context")
    (old / "config.json").write_text(json.dumps(config))
    labeler = Labeler.load(old, "torch")
    assert labeler.context == "abstract"
    assert labeler.label([ABSTRACT])[0] == Labeler.load(model_dir, "torch").label([ABSTRACT])[0]


def test_downsampling_keeps_abstracts_whole_as_context(tmp_path, tiny_bert):
    p = make_project(tmp_path / "project", tiny_bert, context="abstract", use_downsampling=True)
    run(["dvc", "repro", "tokenize"], p)
    table = pq.read_table(p / "data/tokenized/train.parquet")
    labels = [l for ls in table.column("labels").to_pylist() for l in ls]
    assert len(labels) == 284 and sum(l != -100 for l in labels) == 5 * 36  # all sentences, 36 per class in loss
