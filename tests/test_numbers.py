"""Numbers: which form a corpus is in, and raw text rewritten to the form a model was trained on."""
import json
import shutil

from pubmed_rct.modeling.encoding import tokenize_sentences
from pubmed_rct.text.numbers import at_sign, detect
from pubmed_rct.inference.predict import Labeler

RAW = "Pain fell by 30 % at 12 weeks ( p < 0.05 ; 95 % CI 1.1-2.3 ) ; IL-6 and 6MWD improved in 1,200 patients ."
AT = "Pain fell by @ % at @ weeks ( p < @ ; @ % CI @-@ ) ; IL-@ and @MWD improved in @ patients ."


def test_every_number_becomes_one_at_sign():
    assert at_sign(RAW) == AT
    assert at_sign("no numbers here .") == "no numbers here ."


def test_the_form_of_a_corpus_is_detected():
    at_corpus = [AT, "We enrolled @ adults .", "Asthma is common ."]
    assert detect(at_corpus) == "@"
    assert detect([RAW, "We enrolled 40 adults .", "Asthma is common ."]) == "digits"
    assert detect(at_corpus + ["A stray 7 ."]) == "digits"  # digits mean the numbers were kept
    assert detect(["Contact: someone@example.org", "Asthma is common ."] * 20 + ["Asthma is common ."] * 20) == "digits"
    assert detect([]) == "digits"


def test_raw_text_reaches_the_model_in_its_training_form(sentence_model, tmp_path):
    digits = Labeler.load(sentence_model)
    assert json.loads((sentence_model / "config.json").read_text())["number_form"] == "digits"  # the fixture has digits
    assert digits.token_ids([RAW]) == tokenize_sentences(digits.tokenizer, [RAW])  # unchanged
    at_model = tmp_path / "model"
    shutil.copytree(sentence_model, at_model)
    config = json.loads((at_model / "config.json").read_text())
    (at_model / "config.json").write_text(json.dumps({**config, "number_form": "@"}))
    at = Labeler.load(at_model)
    assert at.token_ids([RAW]) == tokenize_sentences(at.tokenizer, [AT]) != digits.token_ids([RAW])
    labelled = at.label([RAW])[0]
    assert labelled[0]["sentence"] == RAW  # the user's text is shown as given
