"""The training loop: batches, resume after a real SIGKILL, and data parallel under torchrun."""
import json
import signal

import pytest

from conftest import make_project, run
from pubmed_rct.training import epoch_batches

FAST = {"train.checkpoint_every_steps": 5, "tracking.required": False}


def test_epoch_batches_cover_every_example_once_and_repeat_per_seed():
    lengths = [i % 37 + 3 for i in range(1000)]
    for grouped in (False, True):
        batches = epoch_batches(lengths, 32, seed=1, epoch=0, group_by_length=grouped)
        assert sorted(i for b in batches for i in b) == list(range(1000))
        assert batches == epoch_batches(lengths, 32, 1, 0, grouped)
        assert batches != epoch_batches(lengths, 32, 1, 1, grouped)  # reshuffled each epoch
    grouped = epoch_batches(lengths, 32, 1, 0, True)
    spread = sum(max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in grouped) / len(grouped)
    assert spread < 5  # similar lengths together: little padding


def test_whole_abstracts_are_packed_to_the_batch_in_labelled_sentences():
    weights = [(i * 7) % 13 + 1 for i in range(300)]  # labelled sentences per abstract: 1..13
    lengths = [w * 30 for w in weights]
    for grouped in (False, True):
        batches = epoch_batches(lengths, 32, 1, 0, grouped, weights)
        assert sorted(i for b in batches for i in b) == list(range(300))
        filled = [sum(weights[i] for i in b) for b in batches]
        assert max(filled) <= 32 and sum(filled[:-1]) / (len(filled) - 1) > 26  # full, never over
        assert len(batches) < 1.2 * sum(weights) / 32  # about the steps of one sentence an example
    big = epoch_batches([10, 10, 10], 4, 1, 0, False, [9, 1, 9], min_examples=2)
    assert all(len(b) >= 2 for b in big)  # one example per process at least, even past the budget
    assert epoch_batches(lengths, 32, 1, 0, False) == epoch_batches(lengths, 32, 1, 0, False, [1] * 300)


@pytest.fixture
def tokenized(tmp_path, tiny_bert):
    def make(name):
        p = make_project(tmp_path / name, tiny_bert, **FAST)
        run(["dvc", "repro", "tokenize"], p)
        return p
    return make


def test_killed_mid_epoch_resumes_from_the_checkpoint_to_the_same_result(tokenized):
    whole, killed = tokenized("whole"), tokenized("killed")
    env = {"MLFLOW_TRACKING_URI": ""}
    run(["python", "stages/train.py"], whole, env)
    r = run(["python", "stages/train.py"], killed, {**env, "PUBMED_RCT_KILL_AT_STEP": "52"}, check=False)
    assert r.returncode == -signal.SIGKILL and not (killed / "metrics/train.json").exists()
    assert len(list((killed / "checkpoints").glob("*/state.pt"))) == 1
    r = run(["python", "stages/train.py"], killed, env)
    assert "resuming from checkpoint" in r.stdout and "at step 55 of 360" in r.stdout  # mid epoch 2 (36 steps each)
    a, b = (json.loads((p / "metrics/train.json").read_text()) for p in (whole, killed))
    assert a["train_steps"] == b["train_steps"] == 360 and a["train_samples"] == b["train_samples"] == 2840
    assert b["train_loss"] == pytest.approx(a["train_loss"], rel=1e-4)
    assert not (killed / "checkpoints").exists() or not any((killed / "checkpoints").iterdir())  # removed when done


def test_two_processes_under_torchrun_see_the_same_samples_and_write_once(tokenized):
    single, ddp = tokenized("single"), tokenized("ddp")
    env = {"MLFLOW_TRACKING_URI": "", "OMP_NUM_THREADS": "1"}
    run(["python", "stages/train.py"], single, env)
    r = run(["torchrun", "--standalone", "--nproc_per_node", "2", "stages/train.py"], ddp, env)
    assert r.stdout.count("train: {") == 1  # only rank 0 reports and writes
    a, b = (json.loads((p / "metrics/train.json").read_text()) for p in (single, ddp))
    assert (b["world_size"], b["per_device_batch_size"], b["global_batch_size"]) == (2, 4, 8)
    assert a["train_steps"] == b["train_steps"] and a["train_samples"] == b["train_samples"]
    assert (ddp / "models/model/config.json").is_file()
    ev = run(["python", "stages/evaluate.py"], ddp, env)
    assert json.loads((ddp / "metrics/eval.json").read_text())["test_micro_f1"] > 0.9, ev.stdout[-500:]


def test_data_parallel_step_is_the_single_process_step(tokenized, tiny_bert, tmp_path):
    """Same global batch, same maths: 36 steps on 1 and on 2 processes give the same weights (dropout off)."""
    import torch
    from conftest import ROOT
    p = tokenized("steps")
    env = {"OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    args = [str(ROOT / "tests/ddp_steps.py"), str(p / "data/tokenized/train.parquet"), str(tiny_bert)]
    run(["python", *args, str(tmp_path / "one.pt")], p, env)
    run(["torchrun", "--standalone", "--nproc_per_node", "2", *args, str(tmp_path / "two.pt")], p, env)
    one, two = torch.load(tmp_path / "one.pt"), torch.load(tmp_path / "two.pt")
    assert one.keys() == two.keys()
    for name in one:
        if name.endswith("attention.self.key.bias"):
            continue  # its true gradient is 0 (softmax ignores it); Adam turns float noise there into steps
        torch.testing.assert_close(two[name], one[name], rtol=1e-4, atol=1e-5)
