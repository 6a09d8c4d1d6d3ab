"""The one phrasing of a result (``analysis.wording``): what the page, table, CSV, JSON, report and Explain say."""

from __future__ import annotations

from bcc_model.analysis.wording import bar_caption, describe, not_analysed

LABELS = ("normal", "benign", "malignant")


def _describe(**kwargs):
    return describe(**{"label": "malignant", "indeterminate": False, "labels": LABELS, "positive": "malignant",
                       "threshold": 0.31, "band": (0.2, 0.45), **kwargs})


def test_a_refused_image_carries_no_class_and_shows_nothing_the_model_said():
    words = _describe(refusal="this looks like an H&E patch", caution="weak model", conformal_set=["malignant"],
                      level=0.9)
    assert (words.kind, words.verdict, words.label, words.shows_output) == ("not assessed", "not assessed", None, False)
    assert "malignant" not in words.headline + words.detail and "H&E patch" in words.detail


def test_an_indeterminate_result_is_not_a_class_and_says_the_rule_one_versus_rest():
    words = _describe(indeterminate=True, conformal_set=["benign", "malignant"], level=0.9)
    assert words.kind == words.verdict == "indeterminate" and words.label is None and words.shows_output
    assert "cannot rule out benign or malignant" in words.detail and "90 %" in words.detail
    assert "malignant when P(malignant) ≥ 31%, else the most likely other class" in words.detail
    assert "leaning" not in words.headline + words.detail
    assert "undecided while" not in words.detail, "with three classes the set decides, not the band"
    two = describe(label="IDC", indeterminate=True, labels=("no IDC", "IDC"), positive="IDC", threshold=0.31,
                   band=(0.14, 0.5))
    assert "else" not in two.detail and "indeterminate band" in two.detail


def test_a_weak_model_gives_model_output_with_its_caution_never_a_result():
    words = _describe(caution="This model discriminates poorly")
    assert words.verdict == "model output: malignant" and words.headline.startswith("Model output: malignant")
    assert words.detail == "This model discriminates poorly" and words.kind == "model output"


def test_a_decided_result_is_its_class_and_a_failure_says_why():
    assert _describe(label="IDC").verdict == "IDC" and _describe(label="IDC").kind == "result"
    failed = not_analysed("not an image")
    assert (failed.verdict, failed.detail, failed.shows_output) == ("not analysed", "not an image", False)


def test_the_bar_caption_says_the_rule_for_three_classes():
    assert "one-versus-rest" in bar_caption("malignant", 0.31, (0.2, 0.45), 3)
    assert "one-versus-rest" not in bar_caption("IDC", 0.31, (0.14, 0.5), 2)
    assert "No indeterminate band" in bar_caption("IDC", 0.31, (0.31, 0.31), 2)
