"""Raw text as people paste it: spaces, invisible characters and compatibility forms, cleaned once."""
import pytest

from pubmed_rct.text.normalize import clean
from pubmed_rct.text.sentences import InputError, split_sentences

# From a PDF: no-break spaces between numbers and units, a thin space, a narrow no-break space
PASTED = ("Mean systolic pressure fell by 8.2\u00a0mmHg (95\u00a0% CI 4.1\u20096.3) after 12\u202fweeks. " * 10).strip()


@pytest.mark.parametrize("raw, cleaned", [
    ("30\u00a0% at 12\u202fweeks and 5\u2009mg", "30 % at 12 weeks and 5 mg"),  # space-like characters
    ("zero\u200bwidth, co\u00adoperation, \ufeffmarked, \u200eleft", "zerowidth, cooperation, marked, left"),
    ("\uff11\uff12 mg of \ufb01brate", "12 mg of fibrate"),  # full-width digits and a ligature folded
    ("10\u207b\u00b3 m\u00b2 and \u00b5g", "10\u207b\u00b3 m\u00b2 and \u00b5g"),  # superscripts keep their meaning
    ("line\u2028break", "line\nbreak"),
    ("plain ASCII stays as it is.", "plain ASCII stays as it is."),
])
def test_clean(raw, cleaned):
    assert clean(raw) == cleaned


def test_an_abstract_pasted_from_a_pdf_is_labelled_not_refused():
    assert len(PASTED) > 400 and PASTED.count("\u00a0") == 20
    sentences = split_sentences(PASTED)
    assert len(sentences) == 10 and sentences[0] == "Mean systolic pressure fell by 8.2 mmHg (95 % CI 4.1 6.3) after 12 weeks."


def test_binary_is_said_only_for_control_characters():
    assert split_sentences("\u200b\u00ad" * 50 + "A sentence.") == ["A sentence."]  # invisible, not binary
    with pytest.raises(InputError, match="binary"):
        split_sentences("A sentence." + "\x01\x02\x03\x04" * 5)
