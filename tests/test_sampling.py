from collections import Counter

import numpy as np
import pytest

from pubmed_rct.corpus.sampling import class_counts, class_weights, downsample


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
    with pytest.raises(ValueError, match=r"downsample.cap: -3 is neither a positive number of sentences nor median"):
        downsample(rows({"A": 2}), "cap", 0, cap=-3)


def test_class_counts_without_mask():
    assert class_counts(rows({"B": 2, "A": 1})) == {"A": 1, "B": 2}
    assert Counter(class_counts(rows({"A": 3}), [True, False, True])) == {"A": 2}


def test_cap_cuts_only_the_classes_above_it():
    data = rows({"A": 50, "B": 7, "C": 20, "D": 3})
    assert class_counts(data, downsample(data, "cap", 1)) == {"A": 13, "B": 7, "C": 13, "D": 3}  # median (7+20)/2
    assert class_counts(data, downsample(data, "cap", 1, cap=10)) == {"A": 10, "B": 7, "C": 10, "D": 3}
    assert downsample(data, "cap", 1, cap=100) == [True] * len(data)


def test_class_weights_on_known_counts():
    from sklearn.utils.class_weight import compute_class_weight
    counts = [6, 3, 1]  # n = 10 sentences, 3 classes
    assert class_weights(counts, "balanced") == pytest.approx([10 / 18, 10 / 9, 10 / 3])
    labels = [0] * 6 + [1] * 3 + [2]
    assert class_weights(counts, "balanced") == pytest.approx(list(compute_class_weight("balanced", classes=np.arange(3), y=np.array(labels))))
    roots = [(10 / 18) ** 0.5, (10 / 9) ** 0.5, (10 / 3) ** 0.5]  # 0.7454, 1.0541, 1.8257; per sentence 0.9460
    mean = (6 * roots[0] + 3 * roots[1] + roots[2]) / 10
    assert class_weights(counts, "sqrt") == pytest.approx([r / mean for r in roots])
    assert sum(c * w for c, w in zip(counts, class_weights(counts, "sqrt"))) == pytest.approx(10)  # mean weight 1
    assert class_weights(counts, "none") is None
    assert class_weights([5, 5], "balanced") == [1.0, 1.0]  # balanced data (e.g. after minority downsampling)
    with pytest.raises(ValueError, match="train.class_weights: 'inverse' is not one of"):
        class_weights(counts, "inverse")
