"""Temporal localisation of fake segments: window labels from segment overlaps, segment proposals from per-window
scores, and the AP@IoU / AR@N metrics of the AV-Deepfake1M evaluation.

Times are in seconds on the video's timeline. A segment is ``[start, end]``.

Window labels. A window ``[start, end]`` overlaps the fake segments of its video by ``overlap`` seconds (the
segments merged first, so two segments that overlap each other are not counted twice); its fraction is the
overlap over the window's length. A window is fake when the overlap is above ``min_overlap`` seconds (default 0:
any overlap), real otherwise.

Proposals (``propose``). VFD scores a window; a higher score is more real. The fakeness of a window is minus its
score. Each instant of the video takes the mean fakeness of the windows that cover it, on a grid of ``step`` seconds
(0.1 s): a curve. For each of ``levels`` thresholds (the quantiles 0.1, 0.2, ..., 0.9 of the curve's values across
the whole test set, so one threshold means the same in every video), each run of consecutive grid cells above the
threshold is a segment; the whole covered span is one more. A segment's confidence is the mean of the curve inside
it minus the mean outside it within the covered span (0 outside when it covers everything), so a segment that stands
out from the rest of its video ranks high. Identical segments keep their highest confidence; the ``max_proposals``
(100) most confident are kept per video, most confident first.

Metrics (``ap_ar``), as the ``avdeepfake1m`` SDK (``avdeepfake1m.evaluation.ap_ar_1d``, version 0.0.4) computes
them:

* IoU of two segments: their intersection over the span from the earlier start to the later end.
* AP at an IoU threshold: within each video, every true segment in turn takes the first proposal (in the video's
  proposal order, most confident first) whose IoU with it is strictly above the threshold and that no earlier true
  segment took; those proposals are true positives, every other proposal a false positive. All proposals of all
  videos are then ranked by confidence (a stable sort, so ties keep the order of the videos and of their
  proposals); precision and recall after each rank (recall over all true segments of the set) give the curve, and
  AP is the area under its interpolated precision (at each recall, the highest precision at that recall or beyond)
  from the recall of the top-ranked proposal to 1. The SDK's curve has no point at recall 0, so the area below the
  top-ranked proposal's recall is not counted: a set whose top proposal alone finds its only segment scores 0.
  With thousands of segments that part is negligible; with a handful it is not.
* AR at N proposals: for each video, a true segment is found when one of its first N proposals has an IoU strictly
  above the threshold. Found and missed segments are summed over the videos, recall is found / (found + missed), and
  AR@N is the mean of the recall over the IoU thresholds 0.5, 0.55, ..., 0.95. As in the SDK, a video with no
  proposal at all adds neither found nor missed segments.
"""
import numpy as np

AP_IOU = (0.5, 0.75, 0.9, 0.95)
AR_PROPOSALS = (50, 30, 20, 10, 5)
AR_IOU = tuple(round(0.5 + 0.05 * k, 2) for k in range(10))
STEP = 0.1
LEVELS = tuple(round(0.1 * k, 1) for k in range(1, 10))
MAX_PROPOSALS = 100


# --------------------------------------------------------------------------------------------------- overlaps

def merge(segments):
    """The union of ``segments`` as sorted, disjoint ``[start, end]`` pairs (empty and reversed ones dropped)."""
    out = []
    for start, end in sorted((float(s), float(e)) for s, e in segments if float(e) > float(s)):
        if out and start <= out[-1][1]:
            out[-1][1] = max(out[-1][1], end)
        else:
            out.append([start, end])
    return out


def overlap(start, end, segments):
    """Seconds of ``[start, end]`` inside the union of ``segments``."""
    return float(sum(max(0.0, min(end, e) - max(start, s)) for s, e in merge(segments)))


def window_label(start, end, segments, min_overlap=0.0):
    """(label, overlap in seconds, fraction of the window): label 0 (fake) when the overlap with ``segments`` is
    above ``min_overlap`` seconds, 1 (real) otherwise."""
    seconds = overlap(start, end, segments)
    fraction = seconds / (end - start) if end > start else 0.0
    return (0 if seconds > min_overlap else 1), seconds, fraction


# --------------------------------------------------------------------------------------------------- proposals

def fakeness_curve(spans, fakeness, step=STEP):
    """(grid start times, curve): the mean fakeness of the windows (``spans``: (start, end) each) covering each
    cell of ``step`` seconds, from the earliest start to the latest end; NaN where no window covers a cell."""
    spans = np.asarray(spans, dtype=np.float64).reshape(-1, 2)
    fakeness = np.asarray(fakeness, dtype=np.float64)
    first, last = spans[:, 0].min(), spans[:, 1].max()
    n = max(1, int(np.ceil(round((last - first) / step, 6))))
    mids = first + (np.arange(n) + 0.5) * step
    total, count = np.zeros(n), np.zeros(n)
    for (start, end), value in zip(spans, fakeness):
        inside = (mids >= start) & (mids < end)
        total[inside] += value
        count[inside] += 1
    with np.errstate(invalid='ignore'):
        curve = np.where(count > 0, total / np.maximum(count, 1), np.nan)
    return first + np.arange(n) * step, curve


def runs_above(curve, threshold):
    """(first cell, last cell + 1) of every run of consecutive cells whose value is above ``threshold``."""
    above = np.concatenate([[False], np.nan_to_num(curve, nan=-np.inf) > threshold, [False]])
    edges = np.flatnonzero(np.diff(above.astype(np.int8)))
    return list(zip(edges[0::2], edges[1::2]))


def propose(spans, fakeness, thresholds, step=STEP, max_proposals=MAX_PROPOSALS):
    """Proposals ``[[confidence, start, end], ...]`` of one video from its windows' spans and fakeness (see the
    module docstring), most confident first."""
    starts, curve = fakeness_curve(spans, fakeness, step)
    covered = ~np.isnan(curve)
    found = {}
    candidates = [(0, len(curve))] + [run for t in thresholds for run in runs_above(curve, t)]
    for first, stop in candidates:
        inside = np.zeros(len(curve), dtype=bool)
        inside[first:stop] = True
        inside &= covered
        if not inside.any():
            continue
        outside = covered & ~inside
        confidence = curve[inside].mean() - (curve[outside].mean() if outside.any() else 0.0)
        key = (round(float(starts[first]), 6), round(float(starts[first] + (stop - first) * step), 6))
        found[key] = max(found.get(key, -np.inf), float(confidence))
    ranked = sorted(found.items(), key=lambda item: (-item[1], item[0]))[:max_proposals]
    return [[confidence, start, end] for (start, end), confidence in ranked]


def thresholds_of(curves, levels=LEVELS):
    """The thresholds of ``propose``: the ``levels`` quantiles of every covered value of ``curves``."""
    values = np.concatenate([c[~np.isnan(c)] for c in curves]) if curves else np.zeros(0)
    return [float(np.quantile(values, q)) for q in levels] if values.size else []


def propose_all(windows, step=STEP, levels=LEVELS, max_proposals=MAX_PROPOSALS):
    """{video: proposals} from ``windows``: {video: (spans, fakeness)}, with thresholds shared by all videos."""
    curves = [fakeness_curve(spans, values, step)[1] for spans, values in windows.values()]
    thresholds = thresholds_of(curves, levels)
    return {video: propose(spans, values, thresholds, step, max_proposals)
            for video, (spans, values) in windows.items()}


# --------------------------------------------------------------------------------------------------- metrics

def iou(proposals, truths):
    """(proposals x truths) IoU matrix of ``[start, end]`` rows, the SDK's definition (module docstring), computed as
    the SDK computes it, in 32-bit floats (so that an IoU on a threshold falls on the same side of it)."""
    p = np.asarray(proposals, dtype=np.float32).reshape(-1, 2)
    t = np.asarray(truths, dtype=np.float32).reshape(-1, 2)
    inner = np.minimum(p[:, None, 1], t[None, :, 1]) - np.maximum(p[:, None, 0], t[None, :, 0])
    outer = np.maximum(p[:, None, 1], t[None, :, 1]) - np.minimum(p[:, None, 0], t[None, :, 0])
    with np.errstate(divide='ignore', invalid='ignore'):
        return np.where(outer > 0, np.maximum(inner, np.float32(0)) / np.where(outer > 0, outer, np.float32(1)),
                        np.float32(0))


def _matches(proposals, truths, threshold):
    """Which of a video's proposals are true positives at ``threshold`` (the SDK's matching)."""
    is_tp = np.zeros(len(proposals), dtype=bool)
    if not len(proposals) or not len(truths):
        return is_tp
    hit = iou([p[1:] for p in proposals], truths) > np.float32(threshold)
    for j in range(hit.shape[1]):
        for i in np.flatnonzero(hit[:, j]):
            if not is_tp[i]:
                is_tp[i] = True
                break
    return is_tp


def average_precision(proposals, truths, threshold):
    """AP at one IoU threshold; ``proposals``: {video: [[confidence, start, end], ...]}, ``truths``: {video:
    [[start, end], ...]} (every video of ``truths`` is scored; one without proposals adds none). None when there
    is no true segment."""
    confidence, is_tp, n_truths = [], [], 0
    for video, segments in truths.items():
        rows = proposals.get(video, [])
        confidence += [float(p[0]) for p in rows]
        is_tp.append(_matches(rows, segments, threshold))
        n_truths += len(segments)
    if not n_truths:
        return None
    is_tp = np.concatenate(is_tp) if is_tp else np.zeros(0, dtype=bool)
    order = np.argsort(-np.asarray(confidence, dtype=np.float64), kind='stable')
    hits = np.cumsum(is_tp[order])
    precision = hits / np.arange(1, len(hits) + 1)
    recall = hits / n_truths
    x = np.concatenate([[1.0], recall[::-1]])
    y = np.concatenate([[0.0], precision[::-1]])
    return float(np.sum(np.abs(np.diff(x)) * np.maximum.accumulate(y)[:-1]))


def average_recall(proposals, truths, n, thresholds=AR_IOU):
    """AR at ``n`` proposals per video, averaged over the IoU ``thresholds``; None when there is no true segment in
    a video that has proposals."""
    found = np.zeros(len(thresholds))
    missed = np.zeros(len(thresholds))
    for video, segments in truths.items():
        rows = proposals.get(video, [])[:n]
        if not rows or not len(segments):   # the SDK counts nothing for a video without proposals
            continue
        best = iou([p[1:] for p in rows], segments).max(axis=0)
        for k, threshold in enumerate(thresholds):
            hit = int(np.sum(best > np.float32(threshold)))
            found[k] += hit
            missed[k] += len(segments) - hit
    total = found + missed
    if not total.any():
        return None
    return float(np.mean(np.where(total > 0, found / np.maximum(total, 1), 0.0)))


def ap_ar(proposals, truths, ap_iou=AP_IOU, ar_proposals=AR_PROPOSALS, ar_iou=AR_IOU):
    """{'ap': {threshold: AP}, 'ar': {n: AR}} of the AV-Deepfake1M protocol (module docstring)."""
    return {'ap': {t: average_precision(proposals, truths, t) for t in ap_iou},
            'ar': {n: average_recall(proposals, truths, n, ar_iou) for n in ar_proposals}}
