from collections import Counter

import pytest

from pubmed_rct.sampling import class_counts, downsample


def rows(counts: dict[str, int]) -> list[dict]:
    return [{"label": l, "abstract_id": f"{l}{i // 3}"} for l, n in counts.items() for i in range(n)]


def test_every_class_cut_to_the_minority_count():
    data = rows({"A": 50, "B": 7, "C": 20})
    keep = downsample(data, "minority", seed=1)
    assert class_counts(data, keep) == {"A": 7, "B": 7, "C": 7}
    # every row of the rarest class is kept; kept rows stay in their original order (a mask)
    assert all(keep[i] for i, r in enumerate(data) if r["label"] == "B")
    assert len(keep) == len(data)


def test_same_seed_same_choice_other_seed_other_choice():
    data = rows({"A": 50, "B": 7, "C": 20})
    assert downsample(data, "minority", 3) == downsample(data, "minority", 3)
    assert downsample(data, "minority", 3) != downsample(data, "minority", 4)


def test_unknown_strategy_is_refused():
    with pytest.raises(ValueError, match="downsample.strategy: 'median'"):
        downsample(rows({"A": 2}), "median", 0)


def test_class_counts_without_mask():
    assert class_counts(rows({"B": 2, "A": 1})) == {"A": 1, "B": 2}
    assert Counter(class_counts(rows({"A": 3}), [True, False, True])) == {"A": 2}
