import pyarrow as pa
import pytest

from pubmed_rct.modeling.encoding import IGNORE, build_examples, examples_table, tokenize_sentences, truncation_stats

CLS, SEP = 101, 102
# three abstracts: 3 sentences, 1 sentence, 2 sentences; token ids are 10*row + position
TOKENS = [[10, 11], [20, 21, 22], [30], [40, 41, 42, 43], [50], [60, 61]]
ABSTRACTS = [[0, 1, 2], [3], [4, 5]]
LABELS = [0, 1, 2, 3, 4, 0]


def examples(mode, **kw):
    args = dict(max_length=128, context_max_length=512, cls=CLS, sep=SEP, labels=LABELS)
    args.update(kw)
    ex = build_examples(TOKENS, ABSTRACTS, mode, **args)
    return [dict(zip(ex, v)) for v in zip(*ex.values())]


def test_none_mode_one_input_per_sentence_classified_at_cls():
    ex = examples("none")
    assert [e["input_ids"] for e in ex[:2]] == [[CLS, 10, 11, SEP], [CLS, 20, 21, 22, SEP]]
    assert all(e["positions"] == [0] for e in ex)
    assert [e["labels"][0] for e in ex] == LABELS and [e["rows"][0] for e in ex] == list(range(6))


def test_abstract_mode_classifies_each_sentence_at_its_sep():
    first, single, last = examples("abstract")
    assert first["input_ids"] == [CLS, 10, 11, SEP, 20, 21, 22, SEP, 30, SEP]
    assert [first["input_ids"][p] for p in first["positions"]] == [SEP, SEP, SEP]
    assert first["positions"] == [3, 7, 9] and first["rows"] == [0, 1, 2] and first["labels"] == [0, 1, 2]
    assert single == {"input_ids": [CLS, 40, 41, 42, 43, SEP], "positions": [5], "labels": [3], "rows": [3]}
    assert last["rows"] == [4, 5]


def test_long_abstract_is_cut_into_chunks_at_sentence_boundaries():
    ex = examples("abstract", max_length=6, context_max_length=8)
    # [CLS] 10 11 [SEP] 20 21 22 [SEP] = 8 tokens; sentence 2 starts the next chunk
    assert [e["rows"] for e in ex] == [[0, 1], [2], [3], [4, 5]]
    assert all(len(e["input_ids"]) <= 8 for e in ex)
    assert sorted(r for e in ex for r in e["rows"]) == list(range(6))  # every sentence exactly once


def test_truncation_keeps_each_sentence_at_most_max_length():
    ex = examples("none", max_length=4)
    assert ex[3]["input_ids"] == [CLS, 40, 41, SEP]
    assert truncation_stats(TOKENS, 4) == {"sentences": 6, "truncated_share": 2 / 6, "mean_tokens": pytest.approx(22 / 6)}


def test_rows_out_of_the_loss_dropped_alone_kept_as_context():
    keep = [True, False, True, True, False, True]
    assert [e["rows"] for e in examples("none", in_loss=keep)] == [[0], [2], [3], [5]]
    ex = examples("abstract", in_loss=keep)
    assert ex[0]["rows"] == [0, 1, 2] and ex[0]["labels"] == [0, IGNORE, 2]


def test_unlabelled_input_and_bad_mode():
    ex = examples("abstract", labels=None)
    assert all(l == IGNORE for e in ex for l in e["labels"])
    with pytest.raises(ValueError, match="context: 'pairs' is not one of"):
        examples("pairs")
    with pytest.raises(ValueError, match="max_length 128 exceeds context_max_length 64"):
        examples("abstract", context_max_length=64)


def test_fast_tokenizer_batches_without_special_tokens(tiny_bert):
    from transformers import AutoTokenizer
    tok = AutoTokenizer.from_pretrained(tiny_bert)
    ids = tokenize_sentences(tok, ["asthma is common .", "pain"], batch_size=1)
    assert len(ids) == 2 and tok.cls_token_id not in ids[0] and tok.unk_token_id not in ids[0]
    assert tok.convert_ids_to_tokens(ids[1]) == ["pain"]


def test_direct_tokenizer_call_gives_the_transformers_ids(tiny_bert):
    """The Rust tokenizer is called directly; a truncation/padding setting saved with it must not apply."""
    from transformers import AutoTokenizer
    tok = AutoTokenizer.from_pretrained(tiny_bert)
    texts = ["Asthma is COMMON in children .", "pain", "", "unknownword pain pain pain pain pain pain pain"]
    expected = tok(texts, add_special_tokens=False)["input_ids"]
    assert tokenize_sentences(tok, texts, batch_size=3) == expected
    tok.backend_tokenizer.enable_truncation(2)
    tok.backend_tokenizer.enable_padding(length=12)
    assert tokenize_sentences(tok, texts) == expected


def test_examples_table_equals_arrow_of_the_lists():
    ex = build_examples(TOKENS, ABSTRACTS, "abstract", 128, 512, CLS, SEP, labels=LABELS)
    table = examples_table(ex)
    assert table.equals(pa.table({k: pa.array(v, pa.list_(pa.int32())) for k, v in ex.items()}))
    assert table.column("input_ids").to_pylist() == ex["input_ids"]
    empty = examples_table({"input_ids": []})
    assert empty.num_rows == 0 and empty.schema.field("input_ids").type == pa.list_(pa.int32())
