"""util/metrics.py against values worked out by hand."""
import math
import warnings

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


def test_accuracy_of_one_pair_and_of_none():
    assert metrics.accuracy_at([1], [0.9], 0.5) == 1.0 and metrics.accuracy_at([0], [0.9], 0.5) == 0.0
    with warnings.catch_warnings():
        warnings.simplefilter('error')       # no numpy warning about the mean of nothing reaches the user
        assert math.isnan(metrics.accuracy_at([], [], 0.5))


def test_video_scores_are_the_mean_of_their_windows_unless_told_otherwise():
    videos, labels, scores = ['a', 'a', 'b', 'a'], [1, 1, 0, 1], [0.2, 0.4, 0.9, 0.9]
    names, out_labels, out_scores, members = metrics.aggregate_by_video(videos, labels, scores)
    assert names == ['a', 'b'] and out_labels.tolist() == [1, 0] and members == [[0, 1, 3], [2]]
    assert out_scores.tolist() == pytest.approx([0.5, 0.9])
    assert metrics.aggregate_by_video(videos, labels, scores, 'max')[2].tolist() == pytest.approx([0.9, 0.9])
    assert metrics.aggregate_by_video(videos, labels, scores, 'median')[2].tolist() == pytest.approx([0.4, 0.9])
    empty = metrics.aggregate_by_video([], [], [])
    assert empty[0] == [] and empty[1].dtype.kind == 'i' and empty[2].size == 0
    with pytest.raises(ValueError, match='use mean, median, max'):
        metrics.aggregate_by_video(videos, labels, scores, 'sum')
    with pytest.raises(ValueError, match='^3 video names for 4 scores$'):
        metrics.aggregate_by_video(videos[:3], labels, scores)


def test_categories_without_reals_have_no_auc_and_no_warning():
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        out = metrics.per_category_auc([0, 0, 0], [0.1, 0.2, 0.3], ['swap', 'lip', 'swap'])
    assert sorted(out) == ['lip', 'swap'] and out['swap']['n_fake'] == 2 and out['lip']['n_fake'] == 1
    assert all(math.isnan(entry['auc']) for entry in out.values())
    # with reals: each category's fakes against all reals (the reals' own categories are ignored)
    out = metrics.per_category_auc([1, 1, 0, 0], [0.5, 0.8, 0.6, 0.1], ['x', '', 'swap', 'lip'])
    assert out == {'swap': {'auc': 0.5, 'n_fake': 1}, 'lip': {'auc': 1.0, 'n_fake': 1}}


def test_why_a_set_cannot_be_measured():
    assert metrics.unmeasurable_reason(0, 0) == 'no samples'
    assert metrics.unmeasurable_reason(0, 1) == 'only fakes (1) and no real: they need both classes'
    assert metrics.unmeasurable_reason(0, 3) == 'only fakes (3) and no real: they need both classes'
    assert metrics.unmeasurable_reason(1, 0) == 'only reals (1) and no fake: they need both classes'
    assert metrics.unmeasurable_reason(1, 1) is None and metrics.unmeasurable_reason(5, 2) is None


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
    # the reports' interval: 1000 resamples from seed 0, the same on every run (another seed or count moves it)
    default = metrics.bootstrap_auc(labels[::4], scores[::4])
    assert default == metrics.bootstrap_auc(labels[::4], scores[::4], n_resamples=1000, seed=0)
    assert default != metrics.bootstrap_auc(labels[::4], scores[::4], n_resamples=1000, seed=1)
    assert default != metrics.bootstrap_auc(labels[::4], scores[::4], n_resamples=1001, seed=0)
    # the bounds are the (1 - c) / 2 and (1 + c) / 2 quantiles of one set of resamples: c = 0 gives their median
    # twice (near the point estimate), and the interval grows with c, about evenly on both sides here
    median = metrics.bootstrap_auc(labels, scores, n_resamples=500, seed=1, confidence=0.0)
    assert median[0] == median[1] and abs(median[0] - point) < 0.01
    half = metrics.bootstrap_auc(labels, scores, n_resamples=500, seed=1, confidence=0.5)
    assert low < half[0] < median[0] < half[1] < high
    assert 0.7 < (point - low) / (high - point) < 1.4


def test_rank_auc_matches_sklearn_with_ties():
    real, fake = np.array([0.5, 0.2, 0.2]), np.array([0.2, 0.1])
    assert metrics._auc_of(real, fake) == pytest.approx(metrics.roc_auc([1, 1, 1, 0, 0], [0.5, 0.2, 0.2, 0.2, 0.1]))
    # by hand: 0.5 is above both fakes (2), each 0.2 above 0.1 and tied with 0.2 (1.5): U = 5 of 6 pairs
    assert metrics._auc_of(real, fake) == 5 / 6 and metrics._auc_of(fake, real) == 1 / 6
    # to the bit against the mid-rank formula, on many ties and unequal class sizes
    from scipy.stats import rankdata
    rng = np.random.default_rng(7)
    for _ in range(200):
        real, fake = (np.round(rng.normal(size=int(rng.integers(1, 30))), 1) for _ in range(2))
        ranks = rankdata(np.concatenate([real, fake]))
        assert metrics._auc_of(real, fake) == ((ranks[:real.size].sum() - real.size * (real.size + 1) / 2)
                                               / (real.size * fake.size))


def test_ap_with_fake_as_the_positive_class_ranks_by_minus_the_score():
    # most fake first: 0.1 (fake, precision 1/1), 0.3 (real), 0.8 (fake, precision 2/3), 0.9 (real); below, with
    # scores 0.2 for the real: 0.1 (fake, 1/1), 0.2 (real), 0.3 (fake, 2/3), 0.8 (fake, 3/4)
    labels, scores = [1, 0, 1, 0], [0.9, 0.8, 0.3, 0.1]
    assert metrics.average_precision_fake(labels, scores) == pytest.approx((1 + 2 / 3) / 2)
    # with real as the positive class: 0.9 (real, 1/1), 0.8 (fake), 0.3 (real, 2/3): the same here by symmetry,
    # and different once the classes are unbalanced
    assert metrics.average_precision([1, 0, 0, 0], [0.9, 0.8, 0.3, 0.1]) == pytest.approx(1.0)
    assert metrics.average_precision_fake([1, 0, 0, 0], [0.9, 0.8, 0.3, 0.1]) == pytest.approx(1.0)
    assert metrics.average_precision_fake([1, 0, 0, 0], [0.2, 0.8, 0.3, 0.1]) == pytest.approx((1 + 2 / 3 + 3 / 4) / 3)
    assert metrics.summarize(labels, scores)['ap_fake'] == metrics.average_precision_fake(labels, scores)
    assert math.isnan(metrics.average_precision_fake([0, 0], [0.2, 0.3]))


def test_paired_bootstrap_of_the_auc_lost():
    labels = [1] * 20 + [0] * 20
    rng = np.random.default_rng(0)
    clean = np.r_[rng.normal(1, 1, 20), rng.normal(-1, 1, 20)]
    assert metrics.bootstrap_auc_drop(labels, clean, clean, n_resamples=100) == (0.0, 0.0)
    worse = clean + rng.normal(0, 3, 40)
    low, high = metrics.bootstrap_auc_drop(labels, clean, worse, n_resamples=300)
    drop = metrics.roc_auc(labels, clean) - metrics.roc_auc(labels, worse)
    assert low < drop < high and 0 < drop
    assert all(math.isnan(v) for v in metrics.bootstrap_auc_drop([1, 1], [0.1, 0.2], [0.1, 0.2]))


def test_ap_per_category_takes_all_reals_and_the_fakes_of_one_category():
    labels = [1, 1, 0, 0, 0]
    scores = [0.9, 0.2, 0.1, 0.85, 0.95]
    # A: fake 0.1 ranked first of {0.1, 0.2, 0.9}: AP 1; B: fakes 0.85 and 0.95 among reals 0.9 and 0.2, ranked most
    # fake first 0.2 (real), 0.85 (fake, 1/2), 0.9 (real), 0.95 (fake, 2/4)
    out = metrics.per_category_ap(labels, scores, [None, None, 'A', 'B', 'B'])
    assert out == {'A': pytest.approx(1.0), 'B': pytest.approx((1 / 2 + 2 / 4) / 2)}
    assert metrics.per_category_ap(labels, scores, [None, None, '', 'B', 'B']).keys() == {'B'}


@pytest.mark.parametrize('labels, scores, expected', [
    # reals 0, 2, 3, 1 and fakes 3, 0: (fpr, fnr) at thresholds 3, 2, 1: (.5, .75), (.5, .5), (.5, .25); the
    # crossing is the point of threshold 2 itself, which a curve with its collinear points dropped would skip
    ([0, 1, 1, 1, 0, 1], [3, 0, 2, 3, 0, 1], (0.5, 2.0)),
    # reals 0, 1 and the fake 1: from (0, 1) to (1, .5) the curves cross at t = 1 / 1.5 of the step
    ([1, 0, 1], [0, 1, 1], (2 / 3, 1.0)),
    # reals 0, 3, 0 and fakes 2, 2, 3: from (1/3, 2/3) to (1, 2/3): half-way, 1/3 + 1/3
    ([0, 1, 1, 0, 0, 1], [2, 0, 3, 2, 3, 0], (2 / 3, 2.0)),
    # every fake above every real: from (.5, 1) to (1, 1), the crossing at the end: EER 1
    ([1, 1, 0, 0, 0, 0], [0, 0, 3, 2, 3, 2], (1.0, 2.0)),
    # reals 3, 1, 1 and the fake 2: from (0, 2/3) to (1, 2/3), a step of denominator exactly 1
    ([1, 0, 1, 1], [3, 2, 1, 1], (2 / 3, 2.0)),
])
def test_equal_error_rate_on_steps_worked_out_by_hand(labels, scores, expected):
    assert metrics.equal_error_rate(labels, scores) == pytest.approx(expected)


def test_summary_holds_every_figure_under_its_name():
    summary = metrics.summarize(LABELS, SCORES)
    assert set(summary) == {'auc', 'ap', 'ap_fake', 'eer', 'eer_threshold', 'n_real', 'n_fake', 'not_measurable'}
    assert summary['ap'] == metrics.average_precision(LABELS, SCORES)
    assert summary['eer_threshold'] == metrics.equal_error_rate(LABELS, SCORES)[1]
    assert summary['not_measurable'] is None
    assert metrics.summarize([1, 1], [0.1, 0.2])['not_measurable'] == metrics.unmeasurable_reason(2, 0)
    assert metrics.summarize([0], [0.1])['not_measurable'] == metrics.unmeasurable_reason(0, 1)


def test_the_point_figures_and_the_roc_are_sklearns_on_ties_and_any_class_balance():
    """The metrics are numpy; sklearn (a test requirement only) is the reference: the same ROC points to the bit,
    the same AUC and APs within 1e-12, on inputs full of ties."""
    from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve
    rng = np.random.default_rng(11)
    for _ in range(300):
        n = int(rng.integers(2, 40))
        labels = rng.integers(0, 2, n)
        labels[:2] = [0, 1]
        scores = np.round(rng.normal(size=n), int(rng.integers(0, 3)))
        for mine, theirs in zip(metrics.roc_points(labels, scores), roc_curve(labels, scores, drop_intermediate=False)):
            assert np.array_equal(mine, theirs)
        assert metrics.roc_auc(labels, scores) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
        assert metrics.average_precision(labels, scores) == pytest.approx(average_precision_score(labels, scores),
                                                                          abs=1e-12)
        assert metrics.average_precision_fake(labels, scores) == \
            pytest.approx(average_precision_score(1 - labels, -scores), abs=1e-12)
    # by hand: scores 0.9 (real), 0.6 (fake), 0.4 (real), 0.1 (fake): a point at each distinct score
    fpr, tpr, thresholds = metrics.roc_points(LABELS, SCORES)
    assert fpr.tolist() == [0, 0, 0.5, 0.5, 1] and tpr.tolist() == [0, 0.5, 0.5, 1, 1]
    assert thresholds.tolist() == [np.inf, 0.9, 0.6, 0.4, 0.1]
    fpr, tpr, thresholds = metrics.roc_points([1, 0, 1, 0], [0.5, 0.5, 0.2, 0.1])   # a tie: one point for both
    assert fpr.tolist() == [0, 0.5, 0.5, 1] and tpr.tolist() == [0, 0.5, 1, 1] and thresholds[1:].tolist() == [
        0.5, 0.2, 0.1]
    with pytest.raises(ValueError, match='^a ROC curve needs both real and fake pairs$'):
        metrics.roc_points([1, 1], [0.2, 0.3])
    # one class: no AP either way round (with reals only, a ranking would score 1.0)
    assert math.isnan(metrics.average_precision([1, 1], [0.2, 0.3]))
    assert math.isnan(metrics.average_precision_fake([0, 0], [0.2, 0.3]))


def test_one_class_gives_nan_without_asking_sklearn():
    with warnings.catch_warnings():
        warnings.simplefilter('error')       # sklearn warns (UndefinedMetricWarning) when asked about one class
        assert math.isnan(metrics.roc_auc([1, 1], [0.2, 0.3]))


def test_paired_bootstrap_of_a_certain_drop_and_its_defaults():
    labels = [1, 1, 1, 0, 0, 0]
    clean = [3.0, 2.0, 1.5, 1.0, 0.5, 0.0]          # AUC 1 in every resample
    assert metrics.bootstrap_auc_drop(labels, clean, [-s for s in clean]) == (1.0, 1.0)   # and 0 reversed
    rng = np.random.default_rng(4)
    labels = [1] * 15 + [0] * 15
    clean, other = rng.normal(size=30) + np.r_[np.ones(15), np.zeros(15)], rng.normal(size=30)
    default = metrics.bootstrap_auc_drop(labels, clean, other)
    assert default == metrics.bootstrap_auc_drop(labels, clean, other, n_resamples=1000, seed=0)
    assert default != metrics.bootstrap_auc_drop(labels, clean, other, n_resamples=1001, seed=0)
    assert default != metrics.bootstrap_auc_drop(labels, clean, other, seed=1)
    low, high = metrics.bootstrap_auc_drop(labels, clean, other, confidence=0.0)
    assert low == high                                  # both bounds are the median
    narrow = metrics.bootstrap_auc_drop(labels, clean, other, confidence=0.5)
    assert default[0] < narrow[0] < low < narrow[1] < default[1]


def test_bad_input_messages_are_exactly_these():
    with pytest.raises(ValueError, match=r'^labels must be 0 \(fake\) or 1 \(real\)$'):
        metrics.roc_auc([2, 0], [0.1, 0.2])
    with pytest.raises(ValueError, match=r'^scores must be finite$'):
        metrics.roc_auc([1, 0], [np.inf, 0.2])



def test_the_bootstraps_ap_is_sklearns_on_ties_and_any_class_balance():
    from sklearn.metrics import average_precision_score
    rng = np.random.default_rng(5)
    for _ in range(300):
        n = int(rng.integers(2, 40))
        truth = rng.integers(0, 2, n).astype(float)
        truth[rng.integers(n)] = 1
        scores = np.round(rng.normal(size=n), int(rng.integers(0, 3)))    # rounded to 0 to 2 decimals: many ties
        assert metrics._ap_of(truth, scores) == pytest.approx(average_precision_score(truth, scores), abs=1e-12)
    # by hand: scores 3, 2, 2, 1 with truth 1, 0, 1, 0: steps at 3 (recall 1/2, precision 1) and at the tie 2
    # (recall 1, precision 2/3): AP = 1/2 * 1 + 1/2 * 2/3
    assert metrics._ap_of(np.array([1., 0, 1, 0]), np.array([3., 2, 2, 1])) == pytest.approx(5 / 6)
    assert metrics._ap_of(np.array([0., 1, 0, 1]), np.array([3., 2, 2, 1])) == \
        pytest.approx(1 / 2 * 1 / 3 + 1 / 2 * 2 / 4)


def test_bootstrap_interval_of_the_ap_with_fake_positive():
    # fakes below every real: AP 1 in every resample
    assert metrics.bootstrap_ap_fake([1, 1, 0, 0], [0.9, 0.8, 0.2, 0.1], n_resamples=50) == (1.0, 1.0)
    rng = np.random.default_rng(2)
    labels = [1] * 20 + [0] * 20
    scores = rng.normal(size=40) + np.r_[np.ones(20), np.zeros(20)]
    low, high = metrics.bootstrap_ap_fake(labels, scores, n_resamples=300)
    assert low < metrics.average_precision_fake(labels, scores) < high
    assert metrics.bootstrap_ap_fake(labels, scores, n_resamples=300) == (low, high)
    assert all(math.isnan(v) for v in metrics.bootstrap_ap_fake([0, 0], [0.1, 0.2]))
    # the same resamples scored by sklearn: reals and fakes drawn separately, in that order, from one generator
    from sklearn.metrics import average_precision_score
    real, fake = scores[:20], scores[20:]
    truth = np.r_[np.zeros(20), np.ones(20)]
    for confidence, seed in ((0.95, 0), (0.5, 3)):
        rng = np.random.default_rng(seed)
        aps = [average_precision_score(truth, -np.r_[rng.choice(real, 20), rng.choice(fake, 20)]) for _ in range(100)]
        want = np.quantile(aps, [(1 - confidence) / 2, (1 + confidence) / 2])
        got = metrics.bootstrap_ap_fake(labels, scores, n_resamples=100, confidence=confidence, seed=seed)
        assert got == pytest.approx(tuple(want), abs=1e-12)
    # the reports' interval: 1000 resamples from seed 0
    default = metrics.bootstrap_ap_fake(labels, scores)
    assert default == metrics.bootstrap_ap_fake(labels, scores, 1000, 0.95, 0)
    assert default != metrics.bootstrap_ap_fake(labels, scores, seed=1)
