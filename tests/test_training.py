"""The training loop: batches, resume after a real SIGKILL, and data parallel under torchrun."""
import json
import signal

import pytest
import torch

from conftest import ROOT, make_project, run, set_params
from pubmed_rct.params import shipped_train
from pubmed_rct.training.loop import epoch_batches

RUN_WITH = str(ROOT / "tests/run_with.py")  # a test's fault injected into the real stage (tests/run_with.py)

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
    r = run(["python", RUN_WITH, "kill-after-checkpoint=52", "stages/train.py"], killed, env, check=False)
    assert r.returncode == -signal.SIGKILL and not (killed / "metrics/train.json").exists()
    assert len(list((killed / "checkpoints").glob("*/state.pt"))) == 1
    r = run(["python", "stages/train.py"], killed, env)
    assert "resuming from checkpoint" in r.stdout and "at step 55 of 360" in r.stdout  # mid epoch 2 (36 steps each)
    a, b = (json.loads((p / "metrics/train.json").read_text()) for p in (whole, killed))
    assert a["train_steps"] == b["train_steps"] == 360 and a["train_samples"] == b["train_samples"] == 2840
    assert b["train_loss"] == pytest.approx(a["train_loss"], rel=1e-4)
    assert not (killed / "checkpoints").exists() or not any((killed / "checkpoints").iterdir())  # removed when done


LAUNCHERS = {"torchrun": ["torchrun", "--standalone", "--nproc_per_node", "2"],
             "accelerate": ["accelerate", "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
                            "--mixed_precision", "no", "--dynamo_backend", "no"]}  # --multi_gpu: its DDP launcher, here on CPUs


@pytest.mark.parametrize("launcher", LAUNCHERS)
def test_two_processes_see_the_same_samples_and_write_once(tokenized, launcher):
    single, ddp = tokenized("single"), tokenized("ddp")
    env = {"MLFLOW_TRACKING_URI": "", "OMP_NUM_THREADS": "1"}
    run(["python", "stages/train.py"], single, env)
    r = run([*LAUNCHERS[launcher], "stages/train.py"], ddp, env)
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


def test_capture_warmup_is_undone_exactly(tiny_bert):
    """Before a CUDA graph is captured the step runs eagerly on dummy inputs; snapshot/restore must leave
    weights and AdamW state as if that never happened (also when AdamW had no state yet)."""
    import torch
    from transformers import AutoModelForSequenceClassification
    from pubmed_rct.training.cuda_graphs import restore, snapshot
    from pubmed_rct.training.loop import make_optimizer, make_step

    config = shipped_train(learning_rate=5e-3, batch_size=4)
    batches = [[{"input_ids": [2, 5 + i, 6 + j, 3], "positions": [0], "labels": [i % 3], "rows": [0]} for i in range(4)]
               for j in range(6)]

    def trained(warm_up_before: set[int]):
        torch.manual_seed(0)
        model = AutoModelForSequenceClassification.from_pretrained(
            tiny_bert, num_labels=3, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
        optimizer = make_optimizer(model, config, torch.device("cpu"))
        step = make_step(model, optimizer, None, config, "none", 0, torch.device("cpu"), None)
        for number, batch in enumerate(batches):
            if number in warm_up_before:
                saved = snapshot(model, optimizer)
                step(batches[-1])
                step(batches[0])
                restore(model, optimizer, saved)
            step(batch)
        return model.state_dict(), optimizer.state_dict()["state"]

    plain, plain_state = trained(set())
    warmed, warmed_state = trained({0, 3})  # before any state exists, and mid-training
    for name in plain:
        torch.testing.assert_close(warmed[name], plain[name], rtol=0, atol=0)
    for index in plain_state:
        for key in plain_state[index]:
            torch.testing.assert_close(warmed_state[index][key], plain_state[index][key], rtol=0, atol=0)


def test_cuda_graphs_only_where_they_can_run(capsys):
    import torch
    from pubmed_rct.training.cuda_graphs import use_cuda_graphs
    cuda, cpu = torch.device("cuda", 0), torch.device("cpu")
    auto = shipped_train(cuda_graphs="auto")
    assert use_cuda_graphs(auto, cuda, "none", 1)
    assert not use_cuda_graphs(shipped_train(), cuda, "none", 1)  # off as shipped
    assert not use_cuda_graphs(auto, cpu, "none", 1)
    assert not use_cuda_graphs(auto, cuda, "abstract", 1)
    assert not use_cuda_graphs(auto, cuda, "none", 2)
    assert not use_cuda_graphs(shipped_train(cuda_graphs="auto", compile="reduce-overhead"), cuda, "none", 1)
    assert capsys.readouterr().out == ""  # auto falls back quietly
    assert not use_cuda_graphs(shipped_train(cuda_graphs="true"), cuda, "abstract", 1)
    assert "context abstract batches change shape every step" in capsys.readouterr().out


def test_train_takes_the_trainers_steps_given_its_batches():
    """Same initial weights and the same batches (fp32, dropout off): `train` and the Hugging Face Trainer with
    its defaults end on the same weights and train_loss, so the step changes speed, not the maths."""
    import random
    import tempfile

    import torch
    from transformers import BertConfig, BertForSequenceClassification, Trainer, TrainingArguments

    from pubmed_rct.training.loop import train
    from train_throughput import trainer_rows

    def model():
        torch.manual_seed(0)
        return BertForSequenceClassification(BertConfig(
            vocab_size=60, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
            num_labels=5, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0))

    rng = random.Random(0)
    examples = [{"input_ids": [2] + [rng.randrange(5, 60) for _ in range(rng.randrange(3, 20))] + [3],
                 "positions": [0], "labels": [rng.randrange(5)], "rows": [i]} for i in range(70)]  # last batch: 6
    config = shipped_train(learning_rate=1e-3, num_epochs=2, precision="fp32", group_by_length=False)
    ours = model()
    result = train(ours, examples, config, "none", 0, 3, progress=False)

    lengths = [len(e["input_ids"]) for e in examples]
    orders = [[i for b in epoch_batches(lengths, 32, 3, epoch, False) for i in b] for epoch in range(2)]
    epochs = []

    class OurOrder(torch.utils.data.Sampler):
        def __len__(self):
            return len(examples)

        def __iter__(self):
            epochs.append(len(epochs))
            return iter(orders[epochs[-1]])

    class TrainerInOurOrder(Trainer):
        def _get_train_sampler(self, *args, **kwargs):
            return OurOrder()

    rows = trainer_rows(examples, 24, pad_id=0)  # pre-padded, as the original project fed it (the benchmarks' reference)
    theirs = model()
    with tempfile.TemporaryDirectory() as tmp:
        args = TrainingArguments(output_dir=tmp, per_device_train_batch_size=32, learning_rate=1e-3, num_train_epochs=2,
                                 report_to=[], save_strategy="no", logging_strategy="no", disable_tqdm=True, use_cpu=True)
        out = TrainerInOurOrder(model=theirs, args=args, train_dataset=rows).train()
    assert epochs == [0, 1] and out.global_step == result["train_steps"] == 6
    assert result["train_loss"] == pytest.approx(out.training_loss, rel=1e-6)
    moved = max((a - b).abs().max().item() for a, b in zip(ours.parameters(), model().parameters()))
    differ = max((a - b).abs().max().item() for a, b in zip(ours.parameters(), theirs.parameters()))
    assert moved > 1e-3 and differ < 1e-3 * moved  # equal but for float rounding


def test_learning_rate_schedule_is_the_trainers_warmup_included(tmp_path):
    """warmup_ratio 0.1 of 37 steps: the same learning rate at every step as the Trainer's own scheduler."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification, Trainer, TrainingArguments
    from pubmed_rct.training.loop import make_optimizer, make_scheduler

    model = BertForSequenceClassification(BertConfig(vocab_size=50, hidden_size=8, num_hidden_layers=1,
                                                     num_attention_heads=1, intermediate_size=8))
    config = shipped_train(learning_rate=3e-4, warmup_ratio=0.1)
    ours = make_optimizer(model, config, torch.device("cpu"))
    theirs = torch.optim.AdamW(model.parameters(), lr=3e-4)
    trainer = Trainer(model=model, args=TrainingArguments(output_dir=str(tmp_path), learning_rate=3e-4,
                                                          warmup_steps=0.1, report_to=[]))
    schedules = [make_scheduler(ours, config, 37), trainer.create_scheduler(37, theirs)]
    rates = [[], []]
    for _ in range(37):
        for scheduler, seen in zip(schedules, rates):
            seen.append(scheduler.get_last_lr()[0])
            scheduler.optimizer.step()
            scheduler.step()
    assert rates[0] == rates[1]
    assert rates[0][:5] == pytest.approx([0, 7.5e-5, 1.5e-4, 2.25e-4, 3e-4])  # ceil(3.7) = 4 warmup steps


def test_two_processes_killed_mid_epoch_resume_each_ranks_random_state(tokenized):
    """Dropout on, 2 processes: each rank's generator is saved and restored, so the resumed run ends with the
    weights of the uninterrupted one (restoring rank 0's state everywhere would not)."""
    from safetensors.torch import load_file
    whole, killed = tokenized("whole"), tokenized("killed")
    env = {"MLFLOW_TRACKING_URI": "", "OMP_NUM_THREADS": "1"}
    torchrun = LAUNCHERS["torchrun"]
    run([*torchrun, "stages/train.py"], whole, env)
    r = run([*torchrun, RUN_WITH, "kill-after-checkpoint=52", "stages/train.py"], killed, env, check=False)
    assert r.returncode != 0 and not (killed / "metrics/train.json").exists()
    saved = torch.load(next((killed / "checkpoints").glob("*/state.pt")), weights_only=False)
    assert len(saved["rng"]) == 2 and not torch.equal(saved["rng"][0]["cpu"], saved["rng"][1]["cpu"])
    r = run([*torchrun, "stages/train.py"], killed, env)
    assert "at step 55 of 360" in r.stdout
    a, b = (load_file(p / "models/model/model.safetensors") for p in (whole, killed))
    for name in a:
        torch.testing.assert_close(b[name], a[name], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("mode", ["none", "abstract"])
def test_weights_of_one_give_the_unweighted_steps_and_others_do_not(tiny_bert, mode):
    from transformers import AutoModelForSequenceClassification, AutoModelForTokenClassification
    from pubmed_rct.training.loop import make_optimizer, make_step
    auto = AutoModelForSequenceClassification if mode == "none" else AutoModelForTokenClassification
    config = shipped_train(learning_rate=5e-3, batch_size=4)
    if mode == "none":
        batches = [[{"input_ids": [2, 5 + i, 6 + j, 3], "positions": [0], "labels": [i % 3], "rows": [0]}
                    for i in range(4)] for j in range(5)]
    else:  # two abstracts a batch, each sentence classified at its [SEP]; one sentence only context (-100)
        batches = [[{"input_ids": [2, 5 + j, 3, 6, 7 + i, 3], "positions": [2, 5], "labels": [i % 3, -100 if i else 1],
                     "rows": [0, 1]} for i in range(2)] for j in range(5)]

    def trained(weights):
        torch.manual_seed(0)
        model = auto.from_pretrained(tiny_bert, num_labels=3, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
        step = make_step(model, make_optimizer(model, config, torch.device("cpu")), None, config, mode, 0,
                         torch.device("cpu"), None, loss_weights=weights)
        losses = [float(step(batch)) for batch in batches]
        return model.state_dict(), losses

    plain, plain_losses = trained(None)
    ones, ones_losses = trained([1.0, 1.0, 1.0])
    assert ones_losses == plain_losses
    for name in plain:
        torch.testing.assert_close(ones[name], plain[name], rtol=0, atol=0)
    _, weighted_losses = trained([0.2, 1.0, 5.0])
    assert weighted_losses[0] != plain_losses[0]


def test_capped_and_weighted_training_records_the_weights_it_used(tmp_path, tiny_bert):
    """context abstract, cap at 40 sentences a class, balanced weights: data.json and train.json agree with the
    weights computed by hand from the capped counts."""
    p = make_project(tmp_path / "project", tiny_bert, context="abstract", use_downsampling=True,
                     **{"downsample.strategy": "cap", "downsample.cap": 40, "train.class_weights": "balanced",
                        "train.num_epochs": 2, "tracking.required": False})
    run(["dvc", "repro", "train"], p, {"MLFLOW_TRACKING_URI": ""})
    data = json.loads((p / "metrics/data.json").read_text())
    counts = data["train_counts"]
    assert counts == {k: min(v, 40) for k, v in data["train_counts_before"].items()} != data["train_counts_before"]
    n, k = sum(counts.values()), len(counts)
    expected = {label: n / (k * c) for label, c in counts.items()}
    assert data["class_weights"] == pytest.approx(expected)
    assert json.loads((p / "metrics/train.json").read_text())["class_weights"] == pytest.approx(expected, abs=1e-6)


def runs_of(project):
    """(status, run id) of every MLflow run in the project's embedded store."""
    import mlflow
    client = mlflow.MlflowClient(f"sqlite:///{project / 'mlruns.db'}")
    exp = client.get_experiment_by_name("pubmed-rct-classification")
    return [(r.info.status, r.info.run_id) for r in client.search_runs([exp.experiment_id])] if exp else [], client


def wait_for(condition, seconds=120):
    import time
    deadline = time.time() + seconds
    while time.time() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return False


TRACKED = {"train.checkpoint_every_steps": 5, "train.log_every_steps": 5, "train.num_epochs": 30}
EMBEDDED = {"MLFLOW_TRACKING_URI": ""}


def test_a_failure_after_the_run_opened_ends_it_failed_and_bad_data_opens_none(tiny_bert, tmp_path):
    """#22 row 27: a truncated data/tokenized/train.parquet failed clearly, but left its MLflow run RUNNING."""
    p = make_project(tmp_path / "p", tiny_bert, **TRACKED)
    run(["dvc", "repro", "tokenize"], p)
    train = p / "data/tokenized/train.parquet"
    good = train.read_bytes()
    train.write_bytes(good[: len(good) // 2])
    r = run(["python", "stages/train.py"], p, EMBEDDED, check=False)
    assert r.returncode == 2 and f"{train.relative_to(p)}: cannot be read as Parquet" in r.stderr
    assert "dvc checkout data/tokenized" in r.stderr and "dvc repro -f tokenize" in r.stderr
    assert runs_of(p)[0] == []  # the data is read before a run is opened
    train.write_bytes(good)
    set_params(p, model=str(tmp_path / "no-such-model"))  # fails after the run has started
    r = run(["python", "stages/train.py"], p, EMBEDDED, check=False)
    assert r.returncode == 2 and "could not be loaded" in r.stderr
    assert [status for status, _ in runs_of(p)[0]] == ["FAILED"]


def test_killed_with_its_dvc_group_the_resumed_run_continues_the_same_mlflow_run(tiny_bert, tmp_path):
    """#22 row 28: after SIGKILL of the `dvc repro` group, the killed run stayed RUNNING and the resumed one's
    curve lacked the steps before the checkpoint."""
    import os
    import subprocess
    from conftest import VENV_BIN
    p = make_project(tmp_path / "p", tiny_bert, **TRACKED)
    run(["dvc", "repro", "tokenize"], p)
    env = {**os.environ, "PATH": f"{VENV_BIN}:{os.environ['PATH']}", **EMBEDDED}
    dvc = subprocess.Popen(["dvc", "repro"], cwd=p, env=env, start_new_session=True, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    state = lambda: next((p / "checkpoints").glob("*/state.pt"), None) if (p / "checkpoints").exists() else None
    assert wait_for(lambda: state() is not None and torch.load(state(), weights_only=False)["state"]["step"] >= 100)
    os.killpg(dvc.pid, signal.SIGKILL)
    dvc.wait()
    [(status, killed)], _ = runs_of(p)
    assert status == "RUNNING"  # nothing could close it: SIGKILL
    r = run(["dvc", "repro"], p, EMBEDDED)
    assert f"resuming MLflow run {killed}" in r.stdout
    [(status, run_id)], client = runs_of(p)
    assert (status, run_id) == ("FINISHED", killed)
    import csv
    with open(p / "metrics/train_loss.csv", newline="") as f:
        steps = [int(row["step"]) for row in csv.DictReader(f)]
    total = json.loads((p / "metrics/train.json").read_text())["train_steps"]
    assert steps == list(range(5, total, 5)) + [total]  # the whole curve, each step once
    assert {m.step for m in client.get_metric_history(run_id, "train_loss")} == set(steps)


def test_killed_while_the_model_is_saved_the_rerun_finishes_from_the_final_checkpoint(tiny_bert, tmp_path):
    """#28 A28b: a SIGKILL while the model was being saved, after the last step, left the MLflow run RUNNING and
    no checkpoint (deleted before the save), so the rerun trained again from step 0."""
    p = make_project(tmp_path / "p", tiny_bert, **{**TRACKED, "train.num_epochs": 3})
    run(["dvc", "repro", "tokenize"], p)
    r = run(["python", RUN_WITH, "kill-in-model-save=1", "stages/train.py"], p, EMBEDDED, check=False)
    assert r.returncode == -signal.SIGKILL and not (p / "models/model").exists()
    [(status, killed)], _ = runs_of(p)
    assert status == "RUNNING"  # nothing could close it: SIGKILL
    r = run(["python", "stages/train.py"], p, EMBEDDED)
    assert "resuming from checkpoint" in r.stdout and "at step 108 of 108" in r.stdout  # nothing trained again
    assert f"resuming MLflow run {killed}" in r.stdout and "epoch 1:" not in r.stdout
    assert runs_of(p)[0] == [("FINISHED", killed)]
    assert (p / "models/model/model.int8.onnx").is_file() and json.loads((p / "metrics/train.json").read_text())[
        "train_steps"] == 108
    assert not (p / "checkpoints").exists() or not any((p / "checkpoints").iterdir())  # gone once saved


def test_the_train_stage_ends_with_dvc_and_a_second_train_waits_for_the_first(tiny_bert, tmp_path):
    """#22 row 29: `kill -9` of dvc alone left train.py running as an orphan that later overwrote the outputs.
    Now it gets SIGTERM when dvc dies and ends its run KILLED; and a second train of the same params and data
    waits for the first instead of running beside it, then resumes from its checkpoint."""
    import os
    import subprocess
    from conftest import VENV_BIN
    p = make_project(tmp_path / "p", tiny_bert, **TRACKED)
    run(["dvc", "repro", "tokenize"], p)
    # dvc runs the stage through $SHELL -c, /bin/sh when unset (as in CI): dash, which forks the command and stays
    # between dvc and train.py; bash would exec it (tests/test_lifetime.py has both)
    env = {**os.environ, "PATH": f"{VENV_BIN}:{os.environ['PATH']}", **EMBEDDED, "SHELL": "/bin/sh"}
    dvc_log = open(tmp_path / "dvc.log", "w+")
    dvc = subprocess.Popen(["dvc", "repro"], cwd=p, env=env, start_new_session=True, stdout=dvc_log,
                           stderr=subprocess.STDOUT)
    # train.py itself: not the shell in between ("/bin/sh -c python stages/train.py"), nor a younger fork of it
    oldest = lambda: subprocess.run(["pgrep", "-o", "-f", "-s", str(dvc.pid), "^python stages/train.py"],
                                    capture_output=True, text=True).stdout.split()
    assert wait_for(lambda: any((p / "checkpoints").glob("*/state.pt")) if (p / "checkpoints").exists() else False)
    [orphan] = map(int, oldest())
    os.kill(dvc.pid, signal.SIGKILL)  # dvc alone
    dvc.wait()
    assert wait_for(lambda: not os.path.exists(f"/proc/{orphan}"), 30), "train.py outlived dvc"
    assert [status for status, _ in runs_of(p)[0]] == ["KILLED"], (tmp_path / "dvc.log").read_text()[-3000:]
    assert not (p / "metrics/train.json").exists()

    logs = {name: open(tmp_path / f"{name}.log", "w+") for name in ("first", "second")}  # files: never full
    first = subprocess.Popen(["python", "stages/train.py"], cwd=p, env=env, stdout=logs["first"],
                             stderr=subprocess.STDOUT, text=True)
    assert wait_for(lambda: [status for status, _ in runs_of(p)[0]] == ["RUNNING"])
    second = subprocess.Popen(["python", "stages/train.py"], cwd=p, env=env, stdout=logs["second"],
                              stderr=subprocess.STDOUT, text=True)
    assert wait_for(lambda: "waiting for training with these params and data (pid" in
                    (tmp_path / "second.log").read_text(), 60)
    assert second.poll() is None and first.poll() is None
    first.send_signal(signal.SIGTERM)
    assert first.wait(timeout=60) == 130 and "stopped: stopped by signal SIGTERM" in (tmp_path / "first.log").read_text()
    assert second.wait(timeout=300) == 0, (tmp_path / "second.log").read_text()[-3000:]
    assert "resuming from checkpoint" in (tmp_path / "second.log").read_text()
    [(status, _)], _ = runs_of(p)
    assert status == "FINISHED"  # one run throughout: killed, resumed, killed, resumed


def test_an_unreadable_checkpoint_is_named_and_training_starts_over(tokenized):
    """#22 row 30: a truncated state.pt made every rerun fail with "PytorchStreamReader failed reading zip
    archive", the file unnamed."""
    p = tokenized("p")
    r = run(["python", RUN_WITH, "kill-after-checkpoint=52", "stages/train.py"], p, EMBEDDED, check=False)
    assert r.returncode == -signal.SIGKILL
    [state] = (p / "checkpoints").glob("*/state.pt")
    state.write_bytes(state.read_bytes()[:1000])
    r = run(["python", "stages/train.py"], p, EMBEDDED)
    assert f"WARNING: checkpoint {state} cannot be read" in r.stderr and "training from the start" in r.stderr
    assert "resuming from checkpoint" not in r.stdout
    assert json.loads((p / "metrics/train.json").read_text())["train_steps"] == 360
