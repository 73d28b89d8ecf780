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


STRUCTURED = ("BACKGROUND: Asthma is common.\nObjective. We tested aspirin.\nMETHODS\nWe randomised 120 adults. "
              "Results - Pain fell (p < 0.05). CONCLUSIONS: Aspirin helps.")


def test_headings_of_structured_abstracts_are_taken_out_and_kept():
    from pubmed_rct.sentences import split_abstract
    assert split_abstract(STRUCTURED) == [
        ("BACKGROUND", "Asthma is common."), ("Objective", "We tested aspirin."), ("METHODS", "We randomised 120 adults."),
        ("METHODS", "Results - Pain fell (p < 0.05)."),  # a dash makes a heading at a line's start only
        ("CONCLUSIONS", "Aspirin helps.")]
    assert split_abstract("A first sentence.\nResults - Pain fell.")[1] == ("Results", "Pain fell.")


@pytest.mark.parametrize("heading", ["INTRODUCTION", "AIMS", "Purpose", "DESIGN", "SETTING", "PARTICIPANTS",
                                     "Interventions", "MEASUREMENTS", "FINDINGS", "INTERPRETATION", "Discussion",
                                     "Materials and methods", "DESIGN, SETTING, AND PARTICIPANTS",
                                     "MAIN OUTCOMES AND MEASURES", "Conclusions and Relevance"])
def test_heading_synonyms_in_each_form(heading):
    from pubmed_rct.sentences import split_abstract
    for text in (f"{heading}: It was done.", f"{heading}. It was done.", f"{heading}\nIt was done.",
                 f"Before. {heading}: It was done.", f"{heading} \u2013 It was done."):
        assert split_abstract(text)[-1] == (heading, "It was done."), text


@pytest.mark.parametrize("text", ["The results: were good.", "Background noise was low.", "Results were mixed.",
                                  "We met the aims. methods: none.", "Design of the trial was simple."])
def test_words_that_only_look_like_headings_stay_in_the_sentence(text):
    from pubmed_rct.sentences import split_abstract
    pairs = split_abstract(text)
    assert {h for h, _ in pairs} == {None} and " ".join(s for _, s in pairs) == text


def test_headings_alone_are_refused():
    with pytest.raises(InputError, match="only section headings"):
        split_sentences("METHODS:\nRESULTS.")
