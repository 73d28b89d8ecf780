import pytest

from pubmed_rct.training.metrics import confusion_rows, plot_confusion, report, scores

LABELS = ["A", "B", "C"]
# hand-checked: A: tp 2 fp 1 fn 0 -> f1 0.8; B: tp 1 fp 0 fn 1 -> 0.6667; C: tp 1 fp 1 fn 1 -> 0.5
Y_TRUE = [0, 0, 1, 1, 2, 2]
Y_PRED = [0, 0, 1, 2, 2, 0]


def test_scores_match_hand_computed_values():
    s = scores(Y_TRUE, Y_PRED, LABELS, "test")
    assert s["test_accuracy"] == pytest.approx(4 / 6, abs=1e-6)
    assert s["test_micro_f1"] == pytest.approx(4 / 6, abs=1e-6)
    assert s["test_f1_A"] == pytest.approx(0.8, abs=1e-6)
    assert s["test_f1_B"] == pytest.approx(2 / 3, abs=1e-6)
    assert s["test_f1_C"] == pytest.approx(0.5, abs=1e-6)
    assert s["test_macro_f1"] == pytest.approx((0.8 + 2 / 3 + 0.5) / 3, abs=1e-6)
    assert s["test_weighted_f1"] == pytest.approx((0.8 + 2 / 3 + 0.5) / 3, abs=1e-6)  # equal supports


def test_absent_class_counts_as_zero_not_an_error():
    s = scores([0, 0], [0, 0], LABELS, "val")
    assert s["val_f1_B"] == 0.0 and s["val_macro_f1"] == pytest.approx(1 / 3, abs=1e-6)


def test_report_confusion_rows_and_plot(tmp_path):
    text = report(Y_TRUE, Y_PRED, LABELS)
    assert "A" in text and "0.8000" in text
    assert confusion_rows(Y_TRUE, Y_PRED, LABELS)[3] == {"actual": "B", "predicted": "C"}
    plot_confusion(Y_TRUE, Y_PRED, LABELS, tmp_path / "cm.png", "t")
    assert (tmp_path / "cm.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
