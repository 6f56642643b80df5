"""util/metrics.py against values worked out by hand."""
import math

import numpy as np
import pytest

from util import metrics

# labels: 1 real, 0 fake; scores: higher = more real.
# Ranked: 0.9 (real) 0.6 (fake) 0.4 (real) 0.1 (fake).
LABELS = [1, 1, 0, 0]
SCORES = [0.9, 0.4, 0.6, 0.1]


def test_auc_counts_correctly_ordered_real_fake_pairs():
    # real-fake pairs: (0.9, 0.6) ok, (0.9, 0.1) ok, (0.4, 0.6) wrong, (0.4, 0.1) ok -> 3/4
    assert metrics.roc_auc(LABELS, SCORES) == pytest.approx(0.75)


def test_auc_ties_count_one_half():
    # one real and one fake with the same score: the single pair is a tie -> 1/2
    assert metrics.roc_auc([1, 0], [0.3, 0.3]) == pytest.approx(0.5)
    # reals 0.5, 0.2; fakes 0.5, 0.1: pairs (0.5,0.5) tie, (0.5,0.1) ok, (0.2,0.5) wrong, (0.2,0.1) ok -> 2.5/4
    assert metrics.roc_auc([1, 1, 0, 0], [0.5, 0.2, 0.5, 0.1]) == pytest.approx(0.625)


def test_average_precision_by_hand():
    # real is the positive class. Ranked: real (P=1/1 at recall 1/2), fake, real (P=2/3 at recall 1)
    # AP = 0.5 * 1 + 0.5 * 2/3
    assert metrics.average_precision(LABELS, SCORES) == pytest.approx(0.5 + 1 / 3)


def test_equal_error_rate_by_hand():
    # thresholds from high to low: >=0.9 -> fpr 0, fnr 1/2; >=0.6 -> fpr 1/2, fnr 1/2 (the crossing)
    eer, threshold = metrics.equal_error_rate(LABELS, SCORES)
    assert eer == pytest.approx(0.5)
    assert threshold == pytest.approx(0.6)


def test_equal_error_rate_interpolates_between_curve_points():
    # reals 4, 3; fakes 2, 1, 0: perfectly separated -> EER 0, threshold at the lowest real score
    eer, threshold = metrics.equal_error_rate([1, 1, 0, 0, 0], [4, 3, 2, 1, 0])
    assert eer == pytest.approx(0.0)
    assert threshold == pytest.approx(3.0)
    # reals 3, 1; fakes 2, 0. Curve points (fpr, fnr): (0, 1) (0, .5) (.5, .5) (.5, 0) (1, 0)
    # crossing reached at (.5, .5) -> EER .5
    eer, _ = metrics.equal_error_rate([1, 0, 1, 0], [3, 2, 1, 0])
    assert eer == pytest.approx(0.5)
    # reals 3, 2, 0.5; fakes 2.5, 1, 0: points ... (1/3, 1/3) at threshold 2 -> EER 1/3
    eer, threshold = metrics.equal_error_rate([1, 1, 1, 0, 0, 0], [3, 2, 0.5, 2.5, 1, 0])
    assert eer == pytest.approx(1 / 3)
    assert threshold == pytest.approx(2.0)


def test_accuracy_at_threshold():
    # threshold 0.5: 0.9 real ok, 0.4 called fake (wrong), 0.6 called real (wrong), 0.1 fake ok -> 1/2
    assert metrics.accuracy_at(LABELS, SCORES, 0.5) == pytest.approx(0.5)
    # threshold 0.4 (inclusive): 0.9 ok, 0.4 ok, 0.6 wrong, 0.1 ok -> 3/4
    assert metrics.accuracy_at(LABELS, SCORES, 0.4) == pytest.approx(0.75)


def test_single_class_gives_nan_not_a_number_that_looks_valid():
    assert math.isnan(metrics.roc_auc([1, 1], [0.2, 0.3]))
    assert math.isnan(metrics.average_precision([0, 0], [0.2, 0.3]))
    assert all(math.isnan(v) for v in metrics.equal_error_rate([1], [0.5]))
    summary = metrics.summarize([1, 1], [0.1, 0.2])
    assert summary['n_real'] == 2 and summary['n_fake'] == 0 and math.isnan(summary['auc'])


def test_bad_input_is_rejected():
    with pytest.raises(ValueError, match='differ in length'):
        metrics.roc_auc([1, 0], [0.1])
    with pytest.raises(ValueError, match='0 \\(fake\\) or 1'):
        metrics.roc_auc([2, 0], [0.1, 0.2])
    with pytest.raises(ValueError, match='finite'):
        metrics.roc_auc([1, 0], [np.nan, 0.2])


def test_summary_keys_and_counts():
    summary = metrics.summarize(LABELS, SCORES)
    assert summary['auc'] == pytest.approx(0.75) and summary['eer'] == pytest.approx(0.5)
    assert (summary['n_real'], summary['n_fake']) == (2, 2)


def test_bootstrap_interval_of_the_auc():
    # perfectly separated: every resample has AUC 1
    assert metrics.bootstrap_auc([1, 1, 0, 0], [0.9, 0.8, 0.2, 0.1], n_resamples=200) == (1.0, 1.0)
    rng = np.random.default_rng(0)
    labels = np.r_[np.ones(200), np.zeros(200)].astype(int)
    scores = np.r_[rng.normal(1, 1, 200), rng.normal(0, 1, 200)]
    point = metrics.roc_auc(labels, scores)
    low, high = metrics.bootstrap_auc(labels, scores, n_resamples=500, seed=1)
    assert low < point < high and high - low < 0.15
    assert (low, high) == metrics.bootstrap_auc(labels, scores, n_resamples=500, seed=1)  # seeded
    small = metrics.bootstrap_auc(labels[::10], scores[::10], n_resamples=500, seed=1)
    assert small[1] - small[0] > high - low  # fewer pairs, wider interval
    assert all(math.isnan(v) for v in metrics.bootstrap_auc([1, 1], [0.1, 0.2]))


def test_rank_auc_matches_sklearn_with_ties():
    real, fake = np.array([0.5, 0.2, 0.2]), np.array([0.2, 0.1])
    assert metrics._auc_of(real, fake) == pytest.approx(metrics.roc_auc([1, 1, 1, 0, 0], [0.5, 0.2, 0.2, 0.2, 0.1]))
