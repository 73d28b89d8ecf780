from concurrent.futures import ThreadPoolExecutor

import pytest

from pubmed_rct.sentences import MAX_CHARS, InputError, split_sentences


@pytest.mark.parametrize("text, expected", [
    ("Mortality fell (p < 0.05). We stopped.", ["Mortality fell (p < 0.05).", "We stopped."]),
    ("Drug vs. placebo was tested. It worked.", ["Drug vs. placebo was tested.", "It worked."]),
    ("Some drugs, e.g. aspirin, i.e. a salicylate, help. Others not.",
     ["Some drugs, e.g. aspirin, i.e. a salicylate, help.", "Others not."]),
    ("As Smith et al. showed in Fig. 2, it rose. Then it fell.",
     ["As Smith et al. showed in Fig. 2, it rose.", "Then it fell."]),
    ("Patients got 2.5 mg daily. OR was 1.8 (95% CI 1.2-3.4). Done.",
     ["Patients got 2.5 mg daily.", "OR was 1.8 (95% CI 1.2-3.4).", "Done."]),
    ("Trials in the U.S. were larger. We conclude.", ["Trials in the U.S. were larger.", "We conclude."]),
    ("A sentence that\nbreaks across\nlines. Another one.", ["A sentence that breaks across lines.", "Another one."]),
    ("First paragraph without a stop\n\nSecond paragraph.", ["First paragraph without a stop", "Second paragraph."]),
])
def test_scientific_text_splits_where_a_reader_would(text, expected):
    assert split_sentences(text) == expected


@pytest.mark.parametrize("text, message", [
    ("", "empty"), ("   \n\t ", "empty"), ("x" * (MAX_CHARS + 1), "limit is 20,000"),
    ("abc\x00\x01\x02def", "binary"),
])
def test_bad_text_is_refused_with_a_reason(text, message):
    with pytest.raises(InputError, match=message):
        split_sentences(text)


def test_threads_splitting_at_once_keep_their_own_sentences():
    texts = [f"Group {i} got {i}.5 mg daily (p < 0.05). Smith et al. agreed in Fig. {i}. We stopped." for i in range(40)]
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(split_sentences, texts * 5))
    assert results == [split_sentences(t) for t in texts] * 5
    assert results[7] == ["Group 7 got 7.5 mg daily (p < 0.05).", "Smith et al. agreed in Fig. 7.", "We stopped."]
