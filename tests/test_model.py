"""Inference batches: sentences counted as in training, every sentence classified once, any batch size alike."""
import numpy as np
import torch

from pubmed_rct.encoding import build_examples
from pubmed_rct.model import pack, predict_proba


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
