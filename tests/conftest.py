"""Shared fixtures: the text-format corpus, a tiny BERT built from a BertConfig, a project copy in git."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "tests" / "fixtures" / "rct"
# The hub dataset of params.yaml, its pinned commit, and a replica of its repo (make_hub.py).
HUB_ID, HUB_COMMIT = "armanc/pubmed-rct20k", "091aec1e2384a20b2b36eb96177755ca13dd0b42"
HUB_REPO = ROOT / "tests" / "fixtures" / "hub" / "pubmed-rct20k"
MODEL_ID, MODEL_COMMIT = "allenai/scibert_scivocab_uncased", "0" * 39 + "1"  # the model of params.yaml (unpinned)
VENV_BIN = Path(sys.executable).parent
# What a project copy needs: code, pipeline, config. Not data, models, metrics or the venv.
PROJECT_FILES = ["dvc.yaml", "params.yaml", "stages", "pubmed_rct", ".dvc/config", ".dvcignore", ".gitignore"]


def make_tiny_bert(path: Path, corpus: Path = CORPUS) -> Path:
    """A 2-layer BERT (hidden 32) with a word-level vocabulary of the corpus: trains in seconds."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizerFast

    words = set()
    for f in corpus.glob("*.txt"):
        for line in f.read_text().splitlines():
            if "\t" in line:
                words.update(re.findall(r"\w+|[^\w\s]", line.split("\t", 1)[1].lower()))
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *sorted(words)]
    path.mkdir(parents=True, exist_ok=True)
    BertTokenizerFast(vocab={w: i for i, w in enumerate(vocab)}, do_lower_case=True).save_pretrained(path)
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=512)
    BertModel(config).save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory) -> Path:
    return make_tiny_bert(tmp_path_factory.mktemp("tiny-bert"))


def make_scibert_like(path: Path, corpus: Path = CORPUS) -> Path:
    """A tiny model laid out as the hub repo allenai/scibert_scivocab_uncased is: config.json (BertConfig's
    keys, model_type bert, no tokenizer settings), an uncased WordPiece vocab.txt, pytorch_model.bin saved from
    BertForPreTraining (bert.* and the pre-training heads cls.*), and no tokenizer.json / tokenizer_config.json."""
    import json
    import torch
    from transformers import BertConfig, BertForPreTraining

    words = {"@"}
    for f in corpus.glob("*.txt"):
        for line in f.read_text().splitlines():
            if "\t" in line:
                text = line.split("\t", 1)[1].lower()  # whole words, and their letter runs (for the @ form)
                words.update(re.findall(r"\w+|[^\w\s]", text) + re.findall(r"[^\W\d]+", text))
    vocab = ["[PAD]", *(f"[unused{i}]" for i in range(4)), "[UNK]", "[CLS]", "[SEP]", "[MASK]", *sorted(words)]
    path.mkdir(parents=True, exist_ok=True)
    (path / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    config = {"attention_probs_dropout_prob": 0.1, "hidden_act": "gelu", "hidden_dropout_prob": 0.1,
              "hidden_size": 32, "initializer_range": 0.02, "intermediate_size": 64, "layer_norm_eps": 1e-12,
              "max_position_embeddings": 512, "model_type": "bert", "num_attention_heads": 2,
              "num_hidden_layers": 2, "pad_token_id": 0, "type_vocab_size": 2, "vocab_size": len(vocab)}
    (path / "config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
    torch.manual_seed(0)
    torch.save(BertForPreTraining(BertConfig(**config)).state_dict(), path / "pytorch_model.bin")
    return path


@pytest.fixture(scope="session")
def scibert_like(tmp_path_factory) -> Path:
    return make_scibert_like(tmp_path_factory.mktemp("allenai") / "scibert_scivocab_uncased")


@pytest.fixture(scope="session")
def hub(tmp_path_factory, scibert_like):
    """The local hub serving the replica of armanc/pubmed-rct20k and a model laid out as
    allenai/scibert_scivocab_uncased: (environment for processes that read it, request log). A fresh Hugging
    Face cache, so that nothing is read from an earlier download."""
    from hub import hub_server
    repos = {("datasets", HUB_ID): (HUB_REPO, HUB_COMMIT), ("models", MODEL_ID): (scibert_like, MODEL_COMMIT)}
    with hub_server(repos) as (url, log):
        yield {"HF_ENDPOINT": url, "HF_HOME": str(tmp_path_factory.mktemp("hf-home"))}, log


def run(cmd: list[str] | str, cwd: Path, env: dict | None = None, check: bool = True, timeout: int = 900):
    """Run a command with the venv first on PATH; on failure show its output."""
    full_env = {**os.environ, "PATH": f"{VENV_BIN}:{os.environ['PATH']}", **(env or {})}
    p = subprocess.run(cmd, cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout,
                       shell=isinstance(cmd, str))
    if check and p.returncode != 0:
        raise AssertionError(f"{cmd} exited {p.returncode}\nstdout:\n{p.stdout[-6000:]}\nstderr:\n{p.stderr[-6000:]}")
    return p


def set_params(project: Path, **updates) -> None:
    """Set dotted keys in params.yaml, e.g. set_params(p, **{"train.num_epochs": 2})."""
    params = yaml.safe_load((project / "params.yaml").read_text())
    for key, value in updates.items():
        node = params
        *parents, last = key.split(".")
        for k in parents:
            node = node[k]
        node[last] = value
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def make_project(dest: Path, tiny_bert: Path, **params) -> Path:
    """A git repo holding a copy of this project, set to the fixture corpus and the tiny BERT."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in PROJECT_FILES:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
        elif src.exists():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    set_params(dest, **{"data.source": str(CORPUS), "model": str(tiny_bert), "train.num_epochs": 10,
                        "train.batch_size": 8, "train.learning_rate": 5e-3, "evaluate.batch_size": 64,
                        "tokenize.context_max_length": 128, **params})
    run("git init -q && git config user.email t@t && git config user.name t && git add -A && "
        "git commit -qm fixture", dest)
    return dest


@pytest.fixture
def project(tmp_path, tiny_bert) -> Path:
    return make_project(tmp_path / "project", tiny_bert)


@pytest.fixture(scope="session")
def mlflow_uri(tmp_path_factory) -> str:
    import services
    with services.mlflow_server(tmp_path_factory.mktemp("mlflow-server")) as uri:
        yield uri


@pytest.fixture(scope="session")
def tracked_project(tmp_path_factory, tiny_bert, mlflow_uri) -> Path:
    """The fixture pipeline run against the tracking server: baseline committed, then an experiment
    `downsampled` (-S use_downsampling=true) left applied in the workspace."""
    p = make_project(tmp_path_factory.mktemp("tracked") / "project", tiny_bert)
    env = {"MLFLOW_TRACKING_URI": mlflow_uri}
    run(["dvc", "repro"], p, env)
    run("git add -A && git commit -qm baseline", p)
    run(["dvc", "exp", "run", "-n", "downsampled", "-S", "use_downsampling=true"], p, env)
    return p


@pytest.fixture(scope="session")
def s3_endpoint(tmp_path_factory) -> str:
    import services
    with services.s3_server(tmp_path_factory.mktemp("s3")) as url:
        yield url


def use_remote(project: Path, endpoint: str, keys: tuple[str, str], url: str | None = None) -> None:
    """Point the committed `storage` remote at the test server; credentials only in .dvc/config.local."""
    run(["dvc", "remote", "modify", "--local", "storage", "endpointurl", endpoint], project)
    run(["dvc", "remote", "modify", "--local", "storage", "access_key_id", keys[0]], project)
    run(["dvc", "remote", "modify", "--local", "storage", "secret_access_key", keys[1]], project)
    if url:
        run(["dvc", "remote", "modify", "--local", "storage", "url", url], project)


@pytest.fixture(scope="session")
def sentence_model(tmp_path_factory, tiny_bert) -> Path:
    """A model trained by the real train stage on the fixture (context none): models/model of a project."""
    p = make_project(tmp_path_factory.mktemp("trained") / "project", tiny_bert)
    run(["dvc", "repro", "train"], p, {"MLFLOW_TRACKING_URI": ""})
    return p / "models" / "model"


def chromium(playwright):
    """Debian's Chromium, headless, with nothing reaching beyond this machine (its background services off)."""
    return playwright.chromium.launch(executable_path="/usr/bin/chromium", args=[
        "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"])


ABSTRACT = ("Asthma remains a major public health problem worldwide. The objective was to evaluate aspirin for asthma. "
            "Patients were randomly assigned to aspirin or control for 12 weeks. "
            "Pain decreased by 30 % in the aspirin group (p < 0.05). Aspirin is safe and effective for asthma.")
ROLES = ["BACKGROUND", "OBJECTIVE", "METHODS", "RESULTS", "CONCLUSIONS"]


# `make test-fast` (pytest -m fast): the tests that need no service, no pipeline run and no trained model,
# for the edit-test loop; `make test` runs them all. A test is fast unless it uses one of these fixtures or
# lives in one of these modules (each of which starts a server, Spark, a browser or `dvc repro`).
SLOW_FIXTURES = {"abstract_project", "app", "hub", "hub_project", "literature", "mlflow_uri", "project", "server",
                 "store", "sentence_model", "tokenized", "tokenized_project", "tracked_project", "s3_endpoint",
                 "tiny_bert", "scibert_like"}
SLOW_MODULES = {"test_pipeline", "test_label_job", "test_remote", "test_web", "test_lifetime", "test_benchmarks",
                "test_search"}


def pytest_configure(config):
    config.addinivalue_line("markers", "fast: needs no service, pipeline run or trained model (make test-fast)")
    config.addinivalue_line("markers", "starts(what): the test starts a service itself (never fast)")


def pytest_collection_modifyitems(config, items):
    for item in items:
        starts = item.get_closest_marker("starts") is not None
        if item.module.__name__ not in SLOW_MODULES and not SLOW_FIXTURES & set(item.fixturenames) and not starts:
            item.add_marker(pytest.mark.fast)
