"""The benchmarks run (tiny sizes, fixture corpus, tiny BERT): a GPU session gets one try at them."""
import json

from conftest import CORPUS, ROOT, run


def test_train_throughput_prints_every_cpu_row(tiny_bert, tmp_path):
    out = tmp_path / "rows.json"
    vocab = json.loads((tiny_bert / "config.json").read_text())["vocab_size"]
    r = run(["python", "benchmarks/train_throughput.py", "--tokenizer", str(tiny_bert), "--data",
             str(CORPUS / "train.txt"), "--steps", "3", "--warmup", "1", "--vocab", str(vocab), "--tmp", str(tmp_path),
             "--check", "4", "--json", str(out)], ROOT, timeout=600)
    rows = json.loads(out.read_text())["rows"]
    assert [row["variant"] for row in rows] == [
        "Trainer defaults (fp32, padded to max_length)", "project step, fp32, pad per batch", "+ bf16 autocast",
        "+ length-grouped batches", "+ fused AdamW"]  # the graph and compile rows are CUDA only
    assert rows[0]["speedup"] == 1.0 and all(row["samples_per_s"] > 0 and row["mfu"] > 0 for row in rows)
    assert "failed" not in r.stdout
    check = next(line for line in r.stdout.splitlines() if line.startswith("graph check"))
    assert "no CUDA device: both runs eager" in check and "max |loss diff| 0.00e+00" in check


def test_context_modes_trains_with_the_trainer_and_the_project_step(tiny_bert, tmp_path):
    for engine in ("trainer", "project"):
        out = tmp_path / f"{engine}.json"
        run(["python", "benchmarks/context_modes.py", "--model", str(tiny_bert), "--data", str(CORPUS),
             "--modes", "none", "--seeds", "1", "--epochs", "1", "--lr", "1e-3", "--engine", engine,
             "--json", str(out)], ROOT, timeout=600)
        (result,) = json.loads(out.read_text())
        assert result["train_steps"] > 0 and 0 <= result["test_micro_f1"] <= 1
    r = run(["python", "benchmarks/context_modes.py", "--model", str(tiny_bert), "--data", str(CORPUS),
             "--modes", "abstract", "--engine", "trainer"], ROOT, check=False)
    assert r.returncode == 2 and "--engine trainer trains single sentences: use --modes none" in r.stderr


def test_tokenize_speed_times_each_step(tiny_bert):
    r = run(["python", "benchmarks/tokenize_speed.py", "--tokenizer", str(tiny_bert), "--data",
             str(CORPUS / "train.txt"), "--sentences", "3000", "--reference", "1000"], ROOT, timeout=300)
    for step in ("reference: tokenizer(texts), first 1,000", "tokenize_sentences", "build_examples",
                 "Arrow table + Parquet", "all of the above"):
        assert step in r.stdout


def test_number_form_trains_on_the_at_copy_and_scores_three_inputs(tiny_bert):
    r = run(["python", "benchmarks/number_form.py", "--model", str(tiny_bert), "--data", str(CORPUS), "--seeds", "1",
             "--lr", "1e-3"], ROOT, timeout=600)
    assert "forms detected: {'original': 'digits', '@ copy': '@'}" in r.stdout
    row = json.loads(next(line for line in r.stdout.splitlines() if line.startswith('{"seed"')))
    for name in ("@ text", "digits, rewritten", "digits, as given"):
        assert 0 <= row[name]["micro_f1"] <= 1
    assert row["@ text"] == row["digits, rewritten"]  # the rewrite gives the model exactly the @ text


def test_context_modes_compares_the_class_imbalance_strategies(tiny_bert, tmp_path):
    out = tmp_path / "runs.json"
    r = run(["python", "benchmarks/context_modes.py", "--model", str(tiny_bert), "--data", str(CORPUS), "--modes",
             "none", "abstract", "--strategies", "baseline", "minority", "cap", "balanced", "sqrt", "--seeds", "1",
             "--epochs", "1", "--lr", "1e-3", "--json", str(out)], ROOT, timeout=600)
    runs = json.loads(out.read_text())
    assert [(x["mode"], x["strategy"]) for x in runs] == [
        (m, s) for m in ("none", "abstract") for s in ("baseline", "minority", "cap", "balanced", "sqrt")]
    assert {x["strategy"]: x["train_sentences"] for x in runs} == {  # fixture: 284 sentences, 36 in the rarest class
        "baseline": 284, "minority": 5 * 36, "cap": 222, "balanced": 284, "sqrt": 284}
    assert "| test_weighted_f1" in r.stdout and "abstract, sqrt" in r.stdout
    r = run(["python", "benchmarks/context_modes.py", "--model", str(tiny_bert), "--data", str(CORPUS),
             "--modes", "none", "--engine", "trainer", "--strategies", "balanced"], ROOT, check=False)
    assert r.returncode == 2 and "--engine trainer has no class weights" in r.stderr


def test_sentence_split_prints_the_table_and_names_each_segmenter():
    r = run(["python", "benchmarks/sentence_split.py"], ROOT, timeout=300)
    assert "51 abstracts, 294 gold sentences" in r.stdout
    assert "| pysbd 0.3.4 + project rules (chosen)   | 1.000     | 1.000  | 1.000 | 51 / 51" in r.stdout
    for name in ("syntok", "segtok", "blingfire", "sentencex", "sentence-splitter"):
        assert f"| {name} " in r.stdout or f"{name} " in r.stdout and "not installed" in r.stdout, name


def test_worker_loop_prints_a_row_per_batch_size(tiny_bert):
    """The GPU session's label step, at a tiny size on CPU: it gets one try there."""
    r = run(["python", "benchmarks/worker_loop.py", "--model", str(tiny_bert), "--data", str(CORPUS / "test.txt"),
             "--abstracts", "20", "--batch-sizes", "16", "64"], ROOT, timeout=300)
    assert "| 16 |" in r.stdout and "| 64 |" in r.stdout and "BERT-base shape" in r.stdout


def test_predict_speed_prints_a_row_per_path(tiny_bert):
    """The benchmark behind docs/predict.md's CPU table (its child process once broke on a renamed attribute)."""
    r = run(["python", "benchmarks/predict_speed.py", "--model", str(tiny_bert),  # nicta-piboso's test abstracts
             "--shapes", "MiniLM", "--modes", "none", "abstract", "--paths", "torch", "ORT int8", "--single", "3",
             "--abstracts", "6"], ROOT, timeout=600)
    rows = [line.split(" | ") for line in r.stdout.splitlines() if line.startswith("| MiniLM |")]
    assert [(row[1], row[2]) for row in rows] == [("none", "torch"), ("none", "ORT int8"), ("abstract", "torch"),
                                                 ("abstract", "ORT int8")], r.stdout
    assert all(float(row[6]) > 0 for row in rows)  # batch abstracts/s
