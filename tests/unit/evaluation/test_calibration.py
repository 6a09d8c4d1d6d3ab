"""Tests for temperature scaling, threshold, indeterminate band and the decision rule."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import softmax

from bcc_model.models.decision import apply_temperature, decide
from bcc_model.evaluation.calibration import band_summary, choose_band, choose_threshold, fit_temperature


def _overconfident(true_t: float, n: int = 6000, k: int = 3, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Labels drawn from softmax(z); the 'model' reports softmax(true_t * z)."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0.0, 1.5, size=(n, k))
    true_p = softmax(logits, axis=1)
    y = np.array([rng.choice(k, p=row) for row in true_p])
    return softmax(true_t * logits, axis=1), y


@pytest.mark.parametrize("true_t", [2.0, 0.5])
def test_fit_temperature_recovers_known_temperature(true_t: float) -> None:
    probs, y = _overconfident(true_t)
    fitted = fit_temperature(probs, y)
    assert abs(fitted - true_t) / true_t < 0.1


def test_temperature_lowers_nll_of_overconfident_model() -> None:
    probs, y = _overconfident(2.0, seed=1)
    calibrated = apply_temperature(probs, fit_temperature(probs, y))
    rows = np.arange(y.size)
    assert -np.log(calibrated[rows, y]).mean() < -np.log(probs[rows, y]).mean()


def test_apply_temperature_rows_sum_to_one_and_identity() -> None:
    probs, _ = _overconfident(1.0, n=200)
    for t in (0.3, 1.0, 4.0):
        out = apply_temperature(probs, t)
        np.testing.assert_allclose(out.sum(axis=1), 1.0, atol=1e-9)
    np.testing.assert_allclose(apply_temperature(probs, 1.0), probs, atol=1e-9)


def test_apply_temperature_softens_and_keeps_ranking_and_input() -> None:
    probs = np.array([[0.9, 0.1], [0.2, 0.8]], dtype=np.float32)
    before = probs.copy()
    out = apply_temperature(probs, 2.0)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(probs, before)
    np.testing.assert_array_equal(out.argmax(axis=1), probs.argmax(axis=1))
    assert out[0, 0] < 0.9 and out[1, 1] < 0.8
    np.testing.assert_allclose(out[0], [0.75, 0.25], atol=1e-6)  # sqrt(9):sqrt(1)


@pytest.mark.parametrize("bad_t", [0.0, -1.0, float("nan"), float("inf")])
def test_apply_temperature_rejects_bad_temperature(bad_t: float) -> None:
    with pytest.raises(ValueError, match="temperature"):
        apply_temperature(np.array([[0.5, 0.5]]), bad_t)


def test_bad_probability_inputs_raise() -> None:
    with pytest.raises(ValueError, match="shape"):
        fit_temperature(np.array([0.2, 0.8]), np.array([1]))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        fit_temperature(np.array([[1.5, -0.5]]), np.array([0]))
    with pytest.raises(ValueError, match="y must"):
        fit_temperature(np.array([[0.5, 0.5]]), np.array([2]))
    with pytest.raises(ValueError, match="y must"):
        fit_temperature(np.array([[0.5, 0.5], [0.4, 0.6]]), np.array([0]))


def test_threshold_separates_separable_classes() -> None:
    p = np.array([0.05, 0.1, 0.2, 0.3, 0.6, 0.7, 0.9])
    truth = np.array([0, 0, 0, 0, 1, 1, 1], dtype=bool)
    t = choose_threshold(p, truth)
    assert 0.3 < t <= 0.6
    assert t == pytest.approx(0.45)  # midpoint of the gap
    assert np.array_equal(p >= t, truth)


def test_threshold_maximises_youden_on_overlapping_scores() -> None:
    rng = np.random.default_rng(3)
    truth = rng.random(400) < 0.3
    p = np.clip(np.where(truth, 0.65, 0.35) + rng.normal(0, 0.15, 400), 0, 1)
    t = choose_threshold(p, truth)

    def youden(thr: float) -> float:
        return (p[truth] >= thr).mean() - (p[~truth] >= thr).mean()

    assert youden(t) == pytest.approx(max(youden(c) for c in np.unique(p)))


def test_threshold_needs_both_classes() -> None:
    with pytest.raises(ValueError, match="both positive and negative"):
        choose_threshold(np.array([0.2, 0.9]), np.array([True, True]))
    with pytest.raises(ValueError, match="equal length"):
        choose_threshold(np.array([0.2, 0.9]), np.array([True]))


def _noisy_scores(seed: int = 4, n: int = 1000) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    truth = rng.random(n) < 0.5
    p = np.clip(np.where(truth, 0.7, 0.3) + rng.normal(0, 0.18, n), 0, 1)
    return p, truth


def _band_stats(p: np.ndarray, truth: np.ndarray, t: float, band: tuple[float, float]) -> tuple[float, float]:
    inside = (p >= band[0]) & (p < band[1])
    return inside.mean(), ((p >= t) == truth)[~inside].mean()


def test_band_reaches_target_and_is_the_narrowest() -> None:
    p, truth = _noisy_scores()
    t = choose_threshold(p, truth)
    lo, hi = choose_band(p, truth, t, target_accuracy=0.95, max_fraction=0.5)
    fraction, accuracy = _band_stats(p, truth, t, (lo, hi))
    assert accuracy >= 0.95 and fraction <= 0.5
    assert lo < t < hi and hi - t == pytest.approx(t - lo)
    narrower = (lo + 0.01, hi - 0.01)
    assert _band_stats(p, truth, t, narrower)[1] < 0.95


def test_band_respects_max_fraction_when_target_unreachable() -> None:
    p, truth = _noisy_scores()
    t = choose_threshold(p, truth)
    lo, hi = choose_band(p, truth, t, target_accuracy=0.999, max_fraction=0.1)
    fraction, _ = _band_stats(p, truth, t, (lo, hi))
    assert 0.05 < fraction <= 0.1  # the widest band allowed, not an empty one
    assert _band_stats(p, truth, t, (lo - 0.01, hi + 0.01))[0] > 0.1


def test_band_is_empty_when_already_accurate_and_clipped() -> None:
    p = np.array([0.0, 0.01, 0.02, 0.98, 0.99, 1.0])
    truth = np.array([0, 0, 0, 1, 1, 1], dtype=bool)
    assert choose_band(p, truth, 0.5) == (0.5, 0.5)
    # Near 0 the band [t - d, t + d) would start below 0; it is clipped.
    p = np.array([0.0, 0.01, 0.03, 0.9, 0.95, 0.97])
    truth = np.array([0, 1, 0, 1, 1, 1], dtype=bool)
    lo, hi = choose_band(p, truth, 0.015, target_accuracy=1.0, max_fraction=0.5)
    assert lo == 0.0 and hi == pytest.approx(0.035)


def test_band_rejects_bad_settings() -> None:
    p, truth = _noisy_scores(n=50)
    with pytest.raises(ValueError, match="target_accuracy"):
        choose_band(p, truth, 0.5, target_accuracy=1.5)
    with pytest.raises(ValueError, match="max_fraction"):
        choose_band(p, truth, 0.5, max_fraction=-0.1)
    with pytest.raises(ValueError, match="threshold"):
        choose_band(p, truth, 1.2)


def test_decide_binary_with_indeterminate_flags() -> None:
    probs = np.array([[0.9, 0.1], [0.55, 0.45], [0.5, 0.5], [0.35, 0.65], [0.2, 0.8]])
    pred, flag = decide(probs, positive_index=1, threshold=0.5, band=(0.4, 0.6))
    np.testing.assert_array_equal(pred, [0, 0, 1, 1, 1])
    np.testing.assert_array_equal(flag, [False, True, True, False, False])


def test_decide_three_classes_uses_best_other_class() -> None:
    # positive = column 2; below threshold the larger of columns 0 and 1 wins.
    probs = np.array([[0.5, 0.2, 0.3], [0.1, 0.6, 0.3], [0.2, 0.4, 0.4], [0.45, 0.1, 0.45]])
    pred, flag = decide(probs, positive_index=2, threshold=0.35, band=(0.3, 0.4))
    np.testing.assert_array_equal(pred, [0, 1, 2, 2])
    np.testing.assert_array_equal(flag, [True, True, False, False])
    pred0, _ = decide(probs, positive_index=0, threshold=0.9, band=(0.9, 0.9))
    np.testing.assert_array_equal(pred0, [2, 1, 1, 2])  # argmax among columns 1 and 2; first wins a tie


def test_decide_rejects_bad_arguments() -> None:
    probs = np.array([[0.5, 0.5]])
    with pytest.raises(ValueError, match="positive_index"):
        decide(probs, 2, 0.5, (0.5, 0.5))
    with pytest.raises(ValueError, match="band"):
        decide(probs, 1, 0.5, (0.6, 0.4))
    with pytest.raises(ValueError, match="threshold"):
        decide(probs, 1, -0.1, (0.0, 0.0))


def test_band_summary_counts() -> None:
    probs = np.array([[0.9, 0.1], [0.55, 0.45], [0.5, 0.5], [0.35, 0.65], [0.2, 0.8]])
    y = np.array([0, 1, 1, 0, 1])
    summary = band_summary(probs, y, 1, 0.5, (0.4, 0.6))
    assert summary == {"fraction": 0.4, "accuracy_outside_band": pytest.approx(2 / 3), "n_outside_band": 3}
    everything = band_summary(probs, y, 1, 0.5, (0.0, 1.0))
    assert everything["accuracy_outside_band"] is None and everything["n_outside_band"] == 0


def test_fit_temperature_keeps_the_network_when_validation_has_no_errors() -> None:
    probs = np.array([[0.9, 0.1], [0.3, 0.7], [0.6, 0.4], [0.45, 0.55]])
    assert fit_temperature(probs, np.array([0, 1, 0, 1])) == 1.0
    fitted = fit_temperature(probs, np.array([0, 1, 1, 1]))
    assert 0.05 < fitted < 20.0 and fitted != 1.0, "one error: the fit is well posed again"


def test_weighted_threshold_and_band_equal_repeating_the_cases():
    """Under-sampled negatives weighted by 1 / fraction move the operating point as if they were all there."""
    from bcc_model.evaluation.calibration import choose_band, choose_threshold

    rng = np.random.default_rng(3)
    t = rng.integers(0, 2, 80).astype(bool)
    p = np.clip(0.3 * t + rng.uniform(0, 0.7, 80), 0, 1)
    w = np.where(t, 1, 4)
    repeat = np.repeat(np.arange(80), w)
    threshold = choose_threshold(p, t, w.astype(float))
    assert threshold == pytest.approx(choose_threshold(p[repeat], t[repeat]))
    assert choose_band(p, t, threshold, weights=w.astype(float)) == pytest.approx(
        choose_band(p[repeat], t[repeat], threshold))
    with pytest.raises(ValueError):
        choose_threshold(p, t, np.zeros(80))
