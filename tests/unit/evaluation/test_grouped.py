"""Per-patient pooling of image scores: the rule, the group truth, and the choice made on out-of-fold scores."""

from __future__ import annotations

import numpy as np
import pytest

from bcc_model.evaluation.grouped import choose_group_pooling, group_roc_auc, pool_scores


def test_pool_scores_per_group_and_a_group_is_positive_if_any_view_is():
    p = np.array([0.1, 0.9, 0.2, 0.4, 0.3])
    positive = np.array([0, 1, 0, 0, 0])
    groups = ["b", "b", "a", "a", "c"]
    ids, pooled, truth = pool_scores(p, positive, groups, "max")
    assert ids.tolist() == ["a", "b", "c"] and pooled.tolist() == [0.4, 0.9, 0.3] and truth.tolist() == [0, 1, 0]
    _, mean, _ = pool_scores(p, positive, groups, "mean")
    np.testing.assert_allclose(mean, [0.3, 0.5, 0.3])
    with pytest.raises(ValueError, match="unknown pooling"):
        pool_scores(p, positive, groups, "median")


def test_max_wins_when_cancer_shows_in_one_view_only_and_the_auc_has_a_patient_interval():
    rng = np.random.default_rng(0)
    groups, p, positive = [], [], []
    for patient in range(60):
        cancer = patient % 3 == 0
        views = rng.uniform(0, 0.5, 4)
        if cancer:
            views[0] = rng.uniform(0.6, 1.0)  # one view of four shows it
        groups += [f"p{patient}"] * 4
        p += views.tolist()
        positive += [int(cancer)] * 4
    p, positive = np.array(p), np.array(positive)
    choice = choose_group_pooling(p, positive, groups)
    assert choice["rule"] == "max" and choice["roc_auc"]["max"] > choice["roc_auc"]["mean"]
    block = group_roc_auc(p, positive, groups, "max", n_resamples=200, seed=0)
    assert block["groups"] == 60 and block["positive_groups"] == 20
    assert block["roc_auc"]["value"] == pytest.approx(1.0)
    low, high = group_roc_auc(p, positive, groups, "mean", n_resamples=200, seed=0)["roc_auc"]["ci95"]
    assert low < high < 1.0


def test_one_class_only_gives_no_auc_and_the_choice_falls_back_to_mean():
    choice = choose_group_pooling(np.array([0.2, 0.3]), np.array([0, 0]), ["a", "b"])
    assert choice == {"rule": "mean", "roc_auc": {"mean": None, "max": None}}
