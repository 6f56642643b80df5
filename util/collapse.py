"""Noticing a collapsed training: encoders whose embeddings no longer depend on their input.

When the face encoder gives (nearly) every face the same embedding, the distance from a voice to its own face
equals its distance to any other face, the positive and negative terms of the loss cancel, and training sits at a
fixed point it does not leave (docs/training.md measures it). ``CollapseMonitor`` watches three signals:

* on every loss line, ``spread``: the mean distance of the batch's face embeddings to their mean, divided by the
  mean voice-to-own-face distance; below ``SPREAD_MIN`` the faces are indistinguishable at the loss's scale;
* on every loss line after the first ``MIN_STEPS`` steps, ``dist_pos`` equal to ``dist_neg`` to three significant
  figures (an untrained model starts that way, so the first steps do not count);
* at every validation, the spread of the validation distances (their standard deviation over their mean) below
  ``SPREAD_MIN``, or, from the second validation on (the first may come before any learning), an AUC within
  ``AUC_BAND`` of 0.5.

A loss-line signal counts once it holds on ``LINES`` consecutive lines. The monitor holds no I/O: it returns
events (dicts) that the training loop logs, writes to metrics.jsonl and shows on the HTML page and in visdom.
"""
import numpy as np

SPREAD_MIN = 0.02
AUC_BAND = 0.02
LINES = 2
MIN_STEPS = 100


def same_to_three_figures(a, b):
    """Whether ``a`` and ``b`` print the same with three significant figures."""
    return f'{a:.3g}' == f'{b:.3g}'


MIN_SPREAD_PAIRS = 8   # fewer validation pairs than this: their spread is not judged (train_DF.validate gives NaN)


def distance_spread(distances):
    """Standard deviation of ``distances`` (an array of non-negative numbers) over their mean; 0 when they are all
    equal or there are none."""
    values = np.asarray(distances, dtype=np.float64).ravel()
    mean = values.mean() if values.size else 0.0
    return float(values.std() / mean) if mean > 0 else 0.0


class CollapseMonitor:
    """Turns loss lines and validation results into collapse events (see the module docstring).

    ``observe_losses`` and ``observe_validation`` return None, or an event dict with ``type`` 'collapse' (its
    ``reasons`` list says what was seen; ``new`` is True for the event that starts a collapse) when a collapse starts
    or a validation finds the run collapsed, or
    ``type`` 'collapse_end' when a validation finds it learning again. ``collapsed_validations`` counts the
    consecutive collapsed validations (for ``--stop_on_collapse``).
    """

    def __init__(self, spread_min=SPREAD_MIN, auc_band=AUC_BAND, lines=LINES, min_steps=MIN_STEPS):
        self.spread_min, self.auc_band, self.lines, self.min_steps = spread_min, auc_band, lines, min_steps
        self.streak = 0                  # consecutive loss lines with a signal
        self.line_reasons = []           # the signals of the last such line
        self.active = False              # a collapse was reported and has not ended
        self.validations = 0
        self.collapsed_validations = 0

    def line_signals(self, losses, step):
        """What on one loss line (a name -> value dict, at training step ``step``) looks collapsed, as readable
        reasons."""
        reasons = []
        spread = losses.get('spread')
        if spread is not None and spread < self.spread_min:
            reasons.append(f'the face embeddings of a batch lie within {100 * spread:.2g} % of the voice-face distance '
                           f'of each other (spread {spread:.3g} < {self.spread_min})')
        d_pos, d_neg = losses.get('dist_pos'), losses.get('dist_neg')
        if step > self.min_steps and d_pos is not None and d_neg is not None and same_to_three_figures(d_pos, d_neg):
            reasons.append(f'dist_pos {d_pos:.3g} equals dist_neg {d_neg:.3g}')
        return reasons

    def observe_losses(self, losses, epoch, step):
        """Look at one loss line; an event when a collapse starts (the signals held on ``lines`` lines in a row)."""
        reasons = self.line_signals(losses, step)
        self.streak = self.streak + 1 if reasons else 0
        self.line_reasons = reasons
        if self.streak >= self.lines and not self.active:
            self.active = True
            return {'type': 'collapse', 'where': 'losses', 'new': True, 'epoch': epoch, 'total_iters': step,
                    'reasons': [f'{r} on {self.streak} loss lines in a row' for r in reasons]}
        return None

    def observe_validation(self, auc, spread, epoch, step):
        """Look at one validation (its AUC and its distance spread); an event when it finds the run collapsed (every
        time), or learning again after a collapse."""
        self.validations += 1
        reasons = []
        if spread < self.spread_min:
            reasons.append(f'the validation distances hardly differ (standard deviation {100 * spread:.2g} % of their '
                           f'mean)')
        if self.validations > 1 and abs(auc - 0.5) <= self.auc_band:
            reasons.append(f'validation AUC {auc:.4f} is within {self.auc_band} of chance (0.5)')
        if self.streak >= self.lines:
            reasons += [f'{r} on the last {self.streak} loss lines' for r in self.line_reasons]
        if reasons:
            new, self.active = not self.active, True
            self.collapsed_validations += 1
            return {'type': 'collapse', 'where': 'validation', 'new': new, 'epoch': epoch, 'total_iters': step,
                    'auc': auc,
                    'distance_spread': spread, 'validations_collapsed': self.collapsed_validations,
                    'reasons': reasons}
        self.collapsed_validations = 0
        if self.active:
            self.active = False
            return {'type': 'collapse_end', 'where': 'validation', 'epoch': epoch, 'total_iters': step, 'auc': auc,
                    'distance_spread': spread}
        return None


def advice(opt, losses=None):
    """What to try against a collapse, from the options the run uses (one paragraph)."""
    tips = []
    if getattr(opt, 'encoder_compat', '') == 'journal' or str(getattr(opt, 'recipe', '')).startswith('journal'):
        if getattr(opt, 'augment', 'none') == 'journal':
            tips.append('--augment none when identity shows in colour (the journal\'s colour jitter and grayscale '
                        'take it from most training faces)')
        if opt.lr < 1e-4:
            tips.append('a higher --lr for small encoders trained from scratch (1e-3 learns at tiny size; 5e-5 is '
                        'the journal\'s rate for its 88 M-parameter encoders)')
        return 'Try ' + '; '.join(tips or ['more epochs or a larger batch']) + ' (see docs/training.md, section 9).'
    if opt.token_init_std >= 0.5:
        tips.append('a small initial class token and position embedding (--token_init_std 0.02; the released '
                    'standard-normal draw drowns the input in a constant)')
    if opt.init_type == 'normal' and opt.init_gain <= 0.05:
        tips.append('--init_type kaiming (N(0, 0.02) weights pass little of the input on)')
    d = (losses or {}).get('dist_pos')
    margin = getattr(opt, 'margin', 0.0)   # the DFD model's flags; other models may have none of them
    absolute = getattr(opt, 'margin_mode', 'relative') == 'absolute'
    if getattr(opt, 'loss', '') == 'triplet' and absolute and d and margin > 2 * d:
        tips.append(f'a margin near the embedding distances (--margin {margin:g} is {margin / d:.0f}x dist_pos, so '
                    f'every hinge term is active and the gradients of positive and negatives cancel)')
    if absolute:
        tips.append('--margin_mode relative (the margin then follows the scale of the embeddings)')
    if not opt.lr_fan_in:
        tips.append('--lr_fan_in 512 (with one learning rate, Adam\'s first steps knock layers with a large fan-in, '
                    'such as the token projections, back into collapse)')
    if getattr(opt, 'negatives', '') == 'sampled' and opt.batch_size < 8:
        tips.append('--negatives in_batch with --batch_size 32')
    if opt.recipe == 'released':
        tips.insert(0, 'the default recipe instead of --recipe released')
    if not tips:
        tips.append('a lower --lr or a warm-up (--warmup_steps)')
    return 'Try ' + '; '.join(tips) + ' (see docs/training.md).'
