"""Detection metrics as pure functions: arrays in, floats out, no I/O.

Convention everywhere: ``labels`` are 1 for real pairs and 0 for fake pairs, ``scores`` are higher for "more real"
(VFD's score is minus the voice-face distance). A metric that is undefined for the input (a single class) is NaN.
"""
import math

import numpy as np


def _check(labels, scores):
    labels = np.asarray(labels).astype(int).ravel()
    scores = np.asarray(scores, dtype=np.float64).ravel()
    if labels.shape != scores.shape:
        raise ValueError(f'labels ({labels.size}) and scores ({scores.size}) differ in length')
    if not set(np.unique(labels)).issubset({0, 1}):
        raise ValueError('labels must be 0 (fake) or 1 (real)')
    if not np.all(np.isfinite(scores)):
        raise ValueError('scores must be finite')
    return labels, scores


def _both_classes(labels):
    return labels.size > 0 and 0 < labels.sum() < labels.size


def roc_auc(labels, scores):
    """Area under the ROC curve (ties count one half); NaN when only one class is present."""
    labels, scores = _check(labels, scores)
    return float(_auc_of(scores[labels == 1], scores[labels == 0])) if _both_classes(labels) else math.nan


def average_precision(labels, scores):
    """Average precision with real (1) as the positive class; NaN without both classes."""
    labels, scores = _check(labels, scores)
    return _ap_of(labels, scores) if _both_classes(labels) else math.nan


def average_precision_fake(labels, scores):
    """Average precision with fake (0) as the positive class, ranked by minus the score (most fake first): the AP of
    the published cross-dataset tables; NaN without both classes."""
    labels, scores = _check(labels, scores)
    return _ap_of(1 - labels, -scores) if _both_classes(labels) else math.nan


def roc_points(labels, scores):
    """The ROC curve with a point at every distinct score: ``(fpr, tpr, thresholds)``, thresholds from high to
    low, the first point (0, 0) at an infinite threshold; a pair is called real when ``score >= threshold``. The same
    arrays, to the bit, as ``sklearn.metrics.roc_curve(labels, scores, drop_intermediate=False)``. Needs both
    classes."""
    labels, scores = _check(labels, scores)
    if not _both_classes(labels):
        raise ValueError('a ROC curve needs both real and fake pairs')
    thresholds, last, tps = _steps(labels, scores)
    fps = 1 + last - tps
    return (np.r_[0.0, fps / fps[-1]], np.r_[0.0, tps / tps[-1]], np.r_[np.inf, thresholds])


def _steps(truth, scores):
    """The ranking behind the ROC points and the AP: ``(distinct scores from high to low, index of each one's last
    item in that order, positives up to and including it)``. The order within a tie does not matter: a tie is one
    step, read at its last item."""
    order = np.argsort(scores)[::-1]
    ranked = scores[order]
    last = np.r_[np.flatnonzero(np.diff(ranked)), ranked.size - 1]
    return ranked[last], last, np.cumsum(truth[order])[last]


def equal_error_rate(labels, scores):
    """Equal error rate and its threshold: ``(eer, threshold)``; ``(nan, nan)`` without both classes.

    Along the ROC curve (thresholds from high to low) the false-positive rate (fakes called real) rises and the
    false-negative rate (reals called fake) falls. The EER is where they meet, interpolated linearly between the
    two curve points around the crossing; the threshold is that of the first point at or past the crossing
    (a pair is called real when ``score >= threshold``).
    """
    labels, scores = _check(labels, scores)
    if not _both_classes(labels):
        return math.nan, math.nan
    fpr, tpr, thresholds = roc_points(labels, scores)
    fnr = 1.0 - tpr
    # the curve starts at (fpr 0, fnr 1) and ends at (fpr 1, fnr 0), so the crossing lies at some i >= 1
    i = int(np.argmax(fnr <= fpr + 1e-12))  # tolerance: 1 - 2/3 is not exactly 1/3 in floating point
    f0, f1, n0, n1 = fpr[i - 1], fpr[i], fnr[i - 1], fnr[i]
    denom = (f1 - f0) - (n1 - n0)
    t = (n0 - f0) / denom if denom != 0 else 0.0
    return float(f0 + t * (f1 - f0)), float(thresholds[i])


def accuracy_at(labels, scores, threshold):
    """Fraction of pairs classified correctly when ``score >= threshold`` means real; NaN for no pairs."""
    labels, scores = _check(labels, scores)
    if labels.size == 0:
        return math.nan
    return float(np.mean((scores >= threshold).astype(int) == labels))


def unmeasurable_reason(n_real, n_fake):
    """Why AUC, AP and EER cannot be measured on ``n_real`` reals and ``n_fake`` fakes (None when they can)."""
    if n_real == 0 and n_fake == 0:
        return 'no samples'
    if n_real == 0:
        return f'only fakes ({n_fake}) and no real: they need both classes'
    if n_fake == 0:
        return f'only reals ({n_real}) and no fake: they need both classes'
    return None


def summarize(labels, scores):
    """AUC, AP, EER and the EER threshold of one set of scores, with the class counts and, when one class is
    missing, why those are not measurable (``not_measurable``; None when they are)."""
    labels_arr, _ = _check(labels, scores)
    eer, threshold = equal_error_rate(labels, scores)
    n_real = int(labels_arr.sum())
    n_fake = int(labels_arr.size - n_real)
    return {
        'auc': roc_auc(labels, scores),
        'ap': average_precision(labels, scores),
        'ap_fake': average_precision_fake(labels, scores),
        'eer': eer,
        'eer_threshold': threshold,
        'n_real': n_real,
        'n_fake': n_fake,
        'not_measurable': unmeasurable_reason(n_real, n_fake),
    }


def _auc_of(real, fake):
    """AUC from the scores of reals and fakes: the Mann-Whitney U (per real, the fakes below it, and half of those
    equal to it) over the number of real-fake pairs. The counts are whole and half numbers, exact in float64, so this
    equals the mid-rank formula to the bit, at a fraction of the cost of ranking (the bootstrap calls it 1000 times)."""
    fake = np.sort(fake)
    below, not_above = np.searchsorted(fake, real, 'left'), np.searchsorted(fake, real, 'right')
    return (below.sum() + 0.5 * (not_above - below).sum()) / (real.size * fake.size)


def _ap_of(truth, scores):
    """Average precision of ``scores`` (higher = more likely positive) against ``truth`` (1 = positive), as
    ``sklearn.metrics.average_precision_score`` computes it (one step per distinct score, ties in one step), in
    plain numpy: the bootstrap calls it a thousand times, and sklearn's input checks cost milliseconds a call (and
    importing sklearn a second in every process)."""
    _, last, tps = _steps(truth, scores)
    precision, recall = tps / (last + 1), tps / tps[-1]
    return float(np.sum(np.diff(recall, prepend=0.0) * precision))


def bootstrap_auc(labels, scores, n_resamples=1000, confidence=0.95, seed=0):
    """Percentile bootstrap interval ``(low, high)`` of the AUC; ``(nan, nan)`` without both classes.

    Reals and fakes are resampled with replacement separately, so every resample keeps the class counts.
    """
    labels, scores = _check(labels, scores)
    if not _both_classes(labels):
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    real, fake = scores[labels == 1], scores[labels == 0]
    aucs = np.array([_auc_of(rng.choice(real, real.size), rng.choice(fake, fake.size)) for _ in range(n_resamples)])
    low, high = np.quantile(aucs, [(1 - confidence) / 2, (1 + confidence) / 2])
    return float(low), float(high)


def bootstrap_ap_fake(labels, scores, n_resamples=1000, confidence=0.95, seed=0):
    """Percentile bootstrap interval ``(low, high)`` of the AP with fake as the positive class
    (``average_precision_fake``), reals and fakes resampled separately as in ``bootstrap_auc``; ``(nan, nan)``
    without both classes."""
    labels, scores = _check(labels, scores)
    if not _both_classes(labels):
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    real, fake = scores[labels == 1], scores[labels == 0]
    truth = np.r_[np.zeros(real.size), np.ones(fake.size)]
    aps = [_ap_of(truth, -np.r_[rng.choice(real, real.size), rng.choice(fake, fake.size)])
           for _ in range(n_resamples)]
    low, high = np.quantile(aps, [(1 - confidence) / 2, (1 + confidence) / 2])
    return float(low), float(high)


def bootstrap_auc_drop(labels, clean, other, n_resamples=1000, confidence=0.95, seed=0):
    """Percentile bootstrap interval ``(low, high)`` of ``AUC(clean) - AUC(other)``, two scorings of the same items
    (the same resamples for both, reals and fakes resampled separately); ``(nan, nan)`` without both classes."""
    labels, clean = _check(labels, clean)
    _, other = _check(labels, other)
    if not _both_classes(labels):
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    real, fake = np.flatnonzero(labels == 1), np.flatnonzero(labels == 0)
    drops = []
    for _ in range(n_resamples):
        r, f = rng.choice(real, real.size), rng.choice(fake, fake.size)
        drops.append(_auc_of(clean[r], clean[f]) - _auc_of(other[r], other[f]))
    low, high = np.quantile(drops, [(1 - confidence) / 2, (1 + confidence) / 2])
    return float(low), float(high)


AGGREGATES = {'mean': np.mean, 'median': np.median, 'max': np.max}


def aggregate_by_video(videos, labels, scores, how='mean'):
    """Window scores -> one score per video: ``(videos, labels, scores, members)`` in first-seen order.

    A video is identified by its name and label together; ``how`` is mean, median or max of its window scores;
    ``members`` lists, per video, the indices of its windows in the input (in input order).
    """
    if how not in AGGREGATES:
        raise ValueError(f'unknown aggregation {how!r}; use {", ".join(AGGREGATES)}')
    labels, scores = _check(labels, scores)
    if len(videos) != labels.size:
        raise ValueError(f'{len(videos)} video names for {labels.size} scores')
    groups = {}
    for i, key in enumerate(zip(videos, labels.tolist())):
        groups.setdefault(key, []).append(i)
    names = [key[0] for key in groups]
    out_labels = np.asarray([key[1] for key in groups], dtype=int)
    out_scores = np.asarray([AGGREGATES[how](scores[idx]) for idx in groups.values()], dtype=float)
    return names, out_labels, out_scores, list(groups.values())


def per_category_auc(labels, scores, categories):
    """AUC of all reals against the fakes of each category: {category: {'auc', 'n_fake'}}.

    ``categories``: one entry per score (the reals' entries are ignored; a fake without a category is left out).
    """
    labels, scores = _check(labels, scores)
    real = scores[labels == 1]
    out = {}
    for name in sorted({c for c, y in zip(categories, labels) if y == 0 and c}):
        fake = scores[(labels == 0) & np.asarray([c == name for c in categories])]
        out[name] = {'auc': float(_auc_of(real, fake)) if real.size and fake.size else float('nan'),
                     'n_fake': int(fake.size)}
    return out


def per_category_ap(labels, scores, categories):
    """AP with fake as the positive class (``average_precision_fake``) of all reals against the fakes of each
    category: {category: AP}; ``categories`` as in ``per_category_auc``."""
    labels, scores = _check(labels, scores)
    names = np.asarray([c or '' for c in categories], dtype=object)
    out = {}
    for name in sorted({c for c, y in zip(categories, labels) if y == 0 and c}):
        keep = (labels == 1) | ((labels == 0) & (names == name))
        out[name] = average_precision_fake(labels[keep], scores[keep])
    return out
