"""PNG figures for the HTML pages: training curves, ROC curves, score histograms.

Uses matplotlib's object API with the Agg canvas, so no global backend is switched and no display is needed.
matplotlib is imported by the first figure, not with this module: the entry scripts import this module, and a run
that draws nothing (``--no_html``, ``--help``, a DDP rank other than 0) need not pay for the import.
"""
import os

import numpy as np

from util import util
from util.metrics import roc_points


def _figure(**kwargs):
    """A matplotlib figure on an Agg canvas."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure as MatplotlibFigure
    fig = MatplotlibFigure(**kwargs)
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path):
    util.mkdirs(os.path.dirname(path) or '.')
    fig.savefig(path, dpi=100, bbox_inches='tight')


def line_plot(path, series, title, xlabel, ylabel):
    """One line per entry of ``series`` (name -> (x values, y values)), saved as a PNG."""
    fig = _figure(figsize=(6, 3.5))
    ax = fig.add_subplot(1, 1, 1)
    for name, (x, y) in series.items():
        ax.plot(x, y, label=name, marker='o' if len(x) < 30 else None, markersize=3)
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    if len(series) > 1:
        ax.legend(fontsize=8)
    _save(fig, path)


def roc_plot(path, labels, scores, title):
    """ROC curve (real = positive class) with the chance diagonal."""
    fpr, tpr, _ = roc_points(labels, scores)
    fig = _figure(figsize=(4.5, 4.5))
    ax = fig.add_subplot(1, 1, 1)
    ax.plot(fpr, tpr, label='VFD')
    ax.plot([0, 1], [0, 1], linestyle='--', color='grey', label='chance')
    ax.set_xlabel('false positive rate (fakes called real)')
    ax.set_ylabel('true positive rate (reals called real)')
    ax.set_title(title)
    ax.legend(loc='lower right', fontsize=8)
    ax.grid(alpha=0.3)
    _save(fig, path)


def score_histograms(path, labels, scores, threshold=None, meaning='minus the voice-face distance'):
    """Histograms of the real and the fake scores, with the decision threshold when there is one; ``meaning`` says
    what a score is (the x-axis label)."""
    labels, scores = np.asarray(labels), np.asarray(scores)
    fig = _figure(figsize=(6, 3.5))
    ax = fig.add_subplot(1, 1, 1)
    bins = np.histogram_bin_edges(scores, bins=30)
    ax.hist(scores[labels == 1], bins=bins, alpha=0.6, label=f'real ({int((labels == 1).sum())})')
    ax.hist(scores[labels == 0], bins=bins, alpha=0.6, label=f'fake ({int((labels == 0).sum())})')
    if threshold is not None:
        ax.axvline(threshold, color='black', linestyle='--', label='validation threshold')
    ax.set_xlabel(f'score = {meaning} (higher = more real)')
    ax.set_ylabel('pairs')
    ax.legend(fontsize=8)
    _save(fig, path)


def learning_curves(path, runs, title='', x='minutes'):
    """Two panels from metrics.jsonl records: validation AUC, and the mean positive and negative distances of the
    loss lines (log scale), against ``x``: 'minutes' since each run's first record, or the training 'step'.
    ``runs``: label -> list of records (dicts with a 'type')."""
    fig = _figure(figsize=(11, 4))
    auc_ax, dist_ax = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    for i, (label, records) in enumerate(runs.items()):
        color = f'C{i % 10}'
        start = min((r['time'] for r in records if 'time' in r), default=0.0)

        def where(r):
            return (r['time'] - start) / 60 if x == 'minutes' else r['total_iters']
        val = [r for r in records if r.get('type') == 'val']
        auc_ax.plot([where(r) for r in val], [r['auc'] for r in val], marker='o', markersize=3, color=color,
                    label=label)
        train = [r for r in records if r.get('type') == 'train' and 'dist_pos' in r.get('losses', {})]
        steps = [where(r) for r in train]
        dist_ax.plot(steps, [r['losses']['dist_pos'] for r in train], color=color, label=f'{label}: dist_pos')
        dist_ax.plot(steps, [r['losses']['dist_neg'] for r in train], color=color, linestyle='--',
                     label=f'{label}: dist_neg')
    xlabel = 'minutes since the first loss line' if x == 'minutes' else 'training step'
    auc_ax.axhline(0.5, color='grey', linewidth=0.8)
    auc_ax.set_ylim(0.4, 1.0)
    auc_ax.set_xlabel(xlabel)
    auc_ax.set_ylabel('validation AUC (held-out identities)')
    auc_ax.set_title(title or 'validation AUC')
    auc_ax.grid(alpha=0.3)
    auc_ax.legend(fontsize=7)
    dist_ax.set_yscale('log')
    dist_ax.set_xlabel(xlabel)
    dist_ax.set_ylabel('mean voice-face distance')
    dist_ax.set_title('own face (solid) and other faces (dashed)')
    dist_ax.grid(alpha=0.3)
    dist_ax.legend(fontsize=6)
    _save(fig, path)
