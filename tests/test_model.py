"""Inference batches: sentences counted as in training, every sentence classified once, any batch size alike."""
import numpy as np
import pytest
import torch

from pubmed_rct.modeling.encoding import build_examples
from pubmed_rct.modeling.batching import cut_wide, pack
from pubmed_rct.modeling.model import predict_proba


def abstract_examples():
    # 6 abstracts of 1..6 sentences; token ids 5..40, sentence lengths 2..4
    token_ids = [[5 + (r * 7 + k) % 30 for k in range(2 + r % 3)] for r in range(21)]
    abstracts, start = [], 0
    for n in range(1, 7):
        abstracts.append(list(range(start, start + n)))
        start += n
    ex = build_examples(token_ids, abstracts, "abstract", 16, 64, cls=2, sep=3)
    return [dict(zip(ex, v)) for v in zip(*ex.values())]


def test_abstracts_are_packed_up_to_the_sentence_budget():
    examples = abstract_examples()
    weights = [len(e["positions"]) for e in examples]
    batches = pack(list(range(len(examples))), weights, 7)
    assert [[weights[i] for i in b] for b in batches] == [[1, 2, 3], [4], [5], [6]]
    assert pack(list(range(len(examples))), weights, 1)[-1] == [5]  # one abstract past the budget: alone


def test_a_cpu_batch_is_cut_where_padding_to_its_longest_would_cost_more_than_a_quarter():
    lengths = [12, 14, 15, 19, 24, 30, 31, 60]  # a 10-sentence abstract's kind of spread, sorted
    parts = cut_wide(list(range(len(lengths))), lengths, 1.25)
    assert [[lengths[i] for i in p] for p in parts] == [[12, 14, 15], [19], [24, 30], [31], [60]]
    assert [i for p in parts for i in p] == list(range(len(lengths)))  # every item once, in order


def test_probabilities_do_not_depend_on_the_batch(tmp_path):
    from transformers import BertConfig, BertForTokenClassification
    torch.manual_seed(0)
    model = BertForTokenClassification(BertConfig(vocab_size=50, hidden_size=32, num_hidden_layers=2,
                                                  num_attention_heads=2, intermediate_size=64, num_labels=5))
    examples = abstract_examples()
    rows1, p1 = predict_proba(model, examples, "abstract", 0, batch_size=1, precision="fp32")
    rows2, p2 = predict_proba(model, examples, "abstract", 0, batch_size=256, precision="fp32")
    assert sorted(rows1.tolist()) == list(range(21)) and sorted(rows2.tolist()) == list(range(21))
    np.testing.assert_allclose(p1[rows1.argsort()], p2[rows2.argsort()], atol=1e-5)


def test_the_forward_never_asks_whether_a_batch_has_padding(monkeypatch):
    """transformers' check of a 2D mask (`padding_mask.all()`) waits for the GPU every forward; the project
    hands SDPA its 4D mask instead, with the same logits, also through a DDP-style wrapper."""
    import transformers.masking_utils as masking
    from transformers import BertConfig, BertForSequenceClassification

    from pubmed_rct.modeling.batching import collate
    from pubmed_rct.modeling.model import sentence_logits
    torch.manual_seed(0)
    model = BertForSequenceClassification(BertConfig(vocab_size=50, hidden_size=32, num_hidden_layers=2,
                                                     num_attention_heads=2, intermediate_size=64, num_labels=5)).eval()
    assert model.config._attn_implementation == "sdpa"
    examples = [{"input_ids": [2] + list(range(5, 5 + n)) + [3], "positions": [0], "labels": [n % 5], "rows": [n]}
                for n in (3, 9, 20)]
    batch = collate(examples, 0, 16, torch.device("cpu"))
    assert batch["attention_mask"].shape == (3, 32) and not batch["attention_mask"].all()
    with torch.no_grad():
        reference = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits

    class Wrapper(torch.nn.Module):  # as DistributedDataParallel: the model in .module, no .config
        def __init__(self, module):
            super().__init__()
            self.module = module

        def forward(self, **kw):
            return self.module(**kw)

    def ask(*a, **kw):
        raise AssertionError("transformers inspected the padding mask's values")

    monkeypatch.setattr(masking, "_ignore_bidirectional_mask_sdpa", ask)
    with torch.no_grad():
        for net in (model, Wrapper(model)):
            torch.testing.assert_close(sentence_logits(net, batch, "none"), reference, rtol=0, atol=0)
        with pytest.raises(AssertionError, match="inspected"):  # the check is real: a 2D mask meets it
            model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])


def test_a_local_copy_of_scibert_loads_uncased_with_its_pretrained_weights(hub, scibert_like, tmp_path):
    """The README's offline route for the model: `hf download allenai/scibert_scivocab_uncased --local-dir`
    (here from the local hub) leaves config.json, vocab.txt and pytorch_model.bin, and nothing else to go on."""
    from conftest import MODEL_ID, run
    from pubmed_rct.modeling.model import build_model, load_tokenizer
    copy = tmp_path / "scibert_scivocab_uncased"
    run(["hf", "download", MODEL_ID, "--local-dir", str(copy)], tmp_path, hub[0])
    assert sorted(p.name for p in copy.iterdir() if not p.name.startswith(".")) == [
        "config.json", "pytorch_model.bin", "vocab.txt"]
    tokenizer = load_tokenizer(str(copy))
    assert tokenizer.tokenize("The Odds RATIO was @ .") == ["the", "odds", "ratio", "was", "@", "."]  # uncased
    from pubmed_rct.modeling.spec import Spec
    model = build_model(str(copy), ["a", "b", "c"], Spec("none", 128, 512, "@"))
    pretrained = torch.load(copy / "pytorch_model.bin", weights_only=True)
    torch.testing.assert_close(model.bert.embeddings.word_embeddings.weight,
                               pretrained["bert.embeddings.word_embeddings.weight"])
    assert model.config.id2label == {0: "a", 1: "b", 2: "c"}


def test_a_model_that_cannot_be_loaded_is_one_clear_line(hub, tiny_bert, tmp_path):
    from conftest import make_project, run
    project = make_project(tmp_path / "project", tiny_bert, model="allenai/no-such-model")
    r = run(["python", "stages/tokenization.py"], project, hub[0], check=False)
    errors = [line for line in r.stderr.splitlines() if line.startswith("error: ")]
    assert r.returncode == 2 and "Traceback" not in r.stderr and len(errors) == 1, r.stderr[-2000:]
    assert "tokenizer of model 'allenai/no-such-model' could not be loaded" in errors[0]
    assert "-S model=" in errors[0]
