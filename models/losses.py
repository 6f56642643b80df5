"""Training losses and the scores of the DFD model.

A loss is a ``Loss`` module registered in ``LOSSES`` (``--loss``): it receives the model's outputs (``Outputs``: the
embeddings of the step, not only distances) and returns the scalar to minimise with the monitoring values of the loss
line; it may own parameters (``--learn_temperature``), which train with the encoders and are saved with the
training state. The arithmetic lives in pure functions (tensors in, tensors out, no state), tested by hand:

* ``triplet`` and ``infonce`` (the 2022 release's family, ``DistanceLoss``): functions of voice-to-face L2 distances;
* ``infonce_paired`` (the journal's pre-training): cosine similarities over a temperature, the voice as the query,
  its own face the positive key, the negatives' faces the negative keys;
* ``fake_pairs`` (the journal's fine-tuning on a deepfake set): the real pair's cosine against the cosines of K fake
  pairs, each a fake window's voice with its own face.

A score (``SCORES``, ``--score``) maps a batch of voice and face embeddings to one number per pair, higher = more
real: ``neg_l2`` (minus the L2 distance, the 2022 release) or ``cosine`` (the journal). ``score_distance`` turns a
score back into a non-negative dissimilarity (``-score``, or ``1 - cosine``) for everything that reports distances
(validation spread, scores.csv, the pages), so no reader assumes that a score is minus a distance.

The distance losses come in two layouts:

* sampled negatives: ``d_pos`` (B,) anchor-to-own-face distances and ``d_neg`` (B, K) anchor-to-negative distances;
* in-batch negatives: ``dist`` (B, B) with ``dist[i, j]`` = distance from voice i to face j (the diagonal holds the
  positives) and ``other`` (B, B) bool, True where face j is of another identity than voice i (a valid negative).

``--loss`` picks the family: ``triplet`` (hinge with ``--margin``) or ``infonce`` (softmax over negative distances
with ``--temperature``). ``LOSSES`` maps each name to its sampled and in-batch forms and the option that sets
their scale. With ``--margin_mode relative``
the model divides all distances by ``mean_negative`` before calling them, so margin and temperature are fractions
of the typical negative distance.
"""
import math

import torch
import torch.nn.functional as F
from torch import nn


def triplet_sampled(d_pos, d_neg, margin):
    """Sum over the K negatives of the batch mean of max(0, d_pos - d_neg + margin).

    With one anchor and K = 5 this is the released loss: five ``TripletMarginLoss`` terms added up.
    """
    return (d_pos.unsqueeze(1) - d_neg + margin).clamp(min=0).mean(0).sum()


def triplet_in_batch(dist, other, margin, k):
    """Per anchor, K times the mean hinge over its valid negatives, averaged over the anchors that have at least K.

    This is the expected value of ``triplet_sampled`` when K negatives are drawn from the batch, so both layouts
    have the same scale. Returns ``(loss, skipped)``: anchors with fewer than K valid negatives are left out and
    counted in ``skipped`` (a 0-d tensor).
    """
    d_pos = dist.diagonal()
    n_other = other.sum(1)
    used = n_other >= k
    hinge = (d_pos.unsqueeze(1) - dist + margin).clamp(min=0) * other
    per_anchor = k * hinge.sum(1) / n_other.clamp(min=1)
    return (per_anchor * used).sum() / used.sum().clamp(min=1), (~used).sum()


def infonce_sampled(d_pos, d_neg, temperature):
    """Cross-entropy of picking the own face among [own, K negatives] with logits ``-distance / temperature``."""
    logits = -torch.cat([d_pos.unsqueeze(1), d_neg], dim=1) / temperature
    return F.cross_entropy(logits, torch.zeros(len(d_pos), dtype=torch.long, device=d_pos.device))


def infonce_in_batch(dist, other, temperature, k=1):
    """Symmetric InfoNCE over the batch: each voice picks its own face among the faces of other identities, and
    each face its own voice, with logits ``-distance / temperature``.

    Same-identity faces other than the own one are masked out (they are neither positives nor negatives). Returns
    ``(loss, skipped)`` like ``triplet_in_batch``: anchors with fewer than ``k`` valid negatives are left out.
    """
    eye = torch.eye(len(dist), dtype=torch.bool, device=dist.device)
    logits = (-dist / temperature).masked_fill(~(other | eye), float('-inf'))
    target = torch.arange(len(dist), device=dist.device)
    used = other.sum(1) >= k
    per_anchor = 0.5 * (F.cross_entropy(logits, target, reduction='none')
                        + F.cross_entropy(logits.t(), target, reduction='none'))
    return (per_anchor * used).sum() / used.sum().clamp(min=1), (~used).sum()


def mean_negative(d_neg, valid=None):
    """Mean of the negative distances ``d_neg`` (B, K), or of the entries of ``d_neg`` (B, B) that ``valid`` marks."""
    if valid is None:
        return d_neg.mean()
    return (d_neg * valid).sum() / valid.sum().clamp(min=1)


def active_fraction(d_pos, d_neg, margin, valid=None):
    """Share of the hinge terms max(0, d_pos - d_neg + margin) that are above zero (so carry a gradient).

    ``d_pos`` (B,), ``d_neg`` (B, K) or (B, B) with ``valid`` (same shape, bool) marking the real negatives.
    """
    active = (d_pos.unsqueeze(1) - d_neg + margin) > 0
    if valid is None:
        return active.float().mean()
    return (active & valid).sum() / valid.sum().clamp(min=1)


def cosine_logits_paired(query, positive, negatives, temperature):
    """(B, 1 + K) logits ``[cos(query, positive), cos(query, negative_k) ...] / temperature`` for query (B, E),
    positive (B, E) and negatives (B, K, E): the journal's InfoNCE with paired negatives."""
    query, positive, negatives = (F.normalize(x, dim=-1) for x in (query, positive, negatives))
    pos = (query * positive).sum(-1, keepdim=True)
    neg = (query.unsqueeze(1) * negatives).sum(-1)
    return torch.cat([pos, neg], dim=1) / temperature


def fake_pair_logits(voice, face, neg_voices, neg_faces, temperature):
    """(B, 1 + K) logits ``[cos(voice, face), cos(neg_voice_k, neg_face_k) ...] / temperature``: the real pair
    against K fake pairs (the journal's fine-tuning); voice, face (B, E), neg_voices, neg_faces (B, K, E)."""
    voice, face, neg_voices, neg_faces = (F.normalize(x, dim=-1) for x in (voice, face, neg_voices, neg_faces))
    pos = (voice * face).sum(-1, keepdim=True)
    neg = (neg_voices * neg_faces).sum(-1)
    return torch.cat([pos, neg], dim=1) / temperature


def first_is_right(logits, valid=None):
    """Mean cross-entropy of picking column 0 of ``logits`` (B, 1 + K); ``valid`` (B, 1 + K) bool masks out
    columns (they get no probability)."""
    if valid is not None:
        logits = logits.masked_fill(~valid, float('-inf'))
    return F.cross_entropy(logits, torch.zeros(len(logits), dtype=torch.long, device=logits.device))


def neg_l2(voice_emb, face_emb):
    """The 2022 release's score of voice-face pairs, (B, E) each -> (B,): minus the L2 distance (higher = more
    real)."""
    return -F.pairwise_distance(voice_emb, face_emb)


def cosine(voice_emb, face_emb):
    """The journal's score, (B, E) each -> (B,): the cosine of the two embeddings (each divided by its norm, then
    the sum of their products), in [-1, 1], higher = more real."""
    voice_emb = voice_emb / voice_emb.norm(dim=-1, keepdim=True)
    face_emb = face_emb / face_emb.norm(dim=-1, keepdim=True)
    return (voice_emb * face_emb).sum(-1)


# --score names -> score functions; the model config stores the name, so a checkpoint is scored as it was trained
SCORES = {'neg_l2': neg_l2, 'cosine': cosine}
# each score as a non-negative dissimilarity (lower = more alike), for the values that report distances
SCORE_DISTANCES = {'neg_l2': lambda score: -score, 'cosine': lambda score: 1.0 - score}
SCORE_MEANING = {'neg_l2': 'minus the L2 distance of the voice and face embeddings',
                 'cosine': 'the cosine of the voice and face embeddings'}


def score_distance(name, scores):
    """Scores of score function ``name`` as distances (array or tensor in, the same kind out): ``-score`` for
    neg_l2, ``1 - score`` for cosine."""
    return SCORE_DISTANCES[name](scores)


# ---------------------------------------------------------------------------------------------------------------
# Loss modules
# ---------------------------------------------------------------------------------------------------------------
class Outputs:
    """What the model gives a loss: ``voice_emb`` (B, E), ``face_emb`` (B, E), ``neg_emb`` (B, K, E) (sampled
    negative faces) or None, ``neg_voice_emb`` (B, K, E) (the voices of those negatives' own clips, for fake pairs)
    or None, ``identity`` (B,) (in-batch negatives) or None."""

    def __init__(self, voice_emb, face_emb, neg_emb=None, neg_voice_emb=None, identity=None):
        self.voice_emb, self.face_emb, self.neg_emb = voice_emb, face_emb, neg_emb
        self.neg_voice_emb, self.identity = neg_voice_emb, identity


class Loss(nn.Module):
    """The loss contract: ``forward(outputs) -> (loss, monitor)``, ``monitor`` a dict of detached 0-d tensors named
    in ``monitor_names`` (the loss line: ``dist_pos`` and ``dist_neg``, the mean distances of the positives and the
    negatives in the loss's own measure, and ``spread``, how much the batch's face embeddings differ, which the
    collapse monitor reads). ``layouts``: the ``--negatives`` it supports; ``needs_neg_voices``: whether each
    negative face must come with its own voice. A loss may own parameters; they train with the encoders."""

    monitor_names = ('dist_pos', 'dist_neg', 'spread')
    layouts = ('sampled', 'in_batch')
    needs_neg_voices = False

    def __init__(self, opt):
        super().__init__()
        self.n_negatives = opt.n_negatives
        self.in_batch = opt.negatives == 'in_batch'

    def describe(self):
        """One line for logs."""
        return type(self).__name__


def embedding_spread(emb, distance):
    """How much embeddings ``emb`` (N, E) depend on their input: their mean distance to their own mean, divided by
    ``distance`` (the mean voice-to-own-face distance). Near 0 the encoder gives every input the same embedding."""
    return (emb - emb.mean(0)).norm(dim=1).mean() / distance.clamp(min=1e-12)


def sampled_or_in_batch_faces(out):
    """(faces of the step (N, E): the positives, then the sampled negatives when there are any)."""
    return out.face_emb if out.neg_emb is None else torch.cat([out.face_emb, out.neg_emb.flatten(0, 1)])


class DistanceLoss(Loss):
    """``triplet`` (hinge with ``--margin``) or ``infonce`` (softmax over ``-distance / --temperature``) on L2
    distances, in-batch or sampled (the pure functions above), with ``--margin_mode relative`` dividing every
    distance by the batch's mean negative distance first. Monitor: ``dist_pos``, ``dist_neg``, the ``active`` share
    of hinge terms, ``spread``, and in-batch the anchors left out (``in_batch_skipped``)."""

    FORMS = {'triplet': (triplet_sampled, triplet_in_batch, 'margin'),
             'infonce': (infonce_sampled, infonce_in_batch, 'temperature')}

    def __init__(self, opt, kind):
        super().__init__(opt)
        self.kind = kind
        self.sampled_form, self.in_batch_form, scale_option = self.FORMS[kind]
        self.scale = getattr(opt, scale_option)
        self.margin = opt.margin
        self.relative = opt.margin_mode == 'relative'
        self.monitor_names = ('dist_pos', 'dist_neg', 'active', 'spread') + (
            ('in_batch_skipped',) if self.in_batch else ())

    def forward(self, out):
        """The loss of one step's embeddings and its monitoring values."""
        if self.in_batch:
            assert out.identity is not None, 'in-batch negatives need the batch\'s identity labels'
            d_neg = torch.cdist(out.voice_emb, out.face_emb, compute_mode='donot_use_mm_for_euclid_dist')  # (B, B)
            d_pos = d_neg.diagonal()
            valid = out.identity.unsqueeze(1) != out.identity.unsqueeze(0)
        else:
            d_pos = F.pairwise_distance(out.voice_emb, out.face_emb)                                      # (B,)
            d_neg = F.pairwise_distance(out.voice_emb.unsqueeze(1).expand_as(out.neg_emb), out.neg_emb)  # (B, K)
            valid = None
        mean_neg = mean_negative(d_neg, valid)
        monitor = {'dist_pos': d_pos.detach().mean(), 'dist_neg': mean_neg.detach()}
        monitor['spread'] = embedding_spread(sampled_or_in_batch_faces(out).detach(), monitor['dist_pos'])
        if self.relative:   # in units of the mean negative distance, a unit the gradient flows through
            d_pos, d_neg = d_pos / mean_neg, d_neg / mean_neg
        monitor['active'] = active_fraction(d_pos.detach(), d_neg.detach(), self.margin, valid)
        if self.in_batch:
            loss, monitor['in_batch_skipped'] = self.in_batch_form(d_neg, valid, self.scale, self.n_negatives)
        else:
            loss = self.sampled_form(d_pos, d_neg, self.scale)
        return loss, monitor

    def describe(self):
        """One line for logs."""
        unit = ' (relative)' if self.relative else ''
        return f'{self.kind}, {"margin" if self.kind == "triplet" else "temperature"} {self.scale:g}{unit}'


class Temperature(nn.Module):
    """The temperature of a cosine loss: ``--temperature``, fixed, or with ``--learn_temperature`` learnt as its
    logarithm (CLIP's learnt logit scale, inverted), kept within [0.01, 100]."""

    def __init__(self, value, learn):
        super().__init__()
        if learn:
            self.log_value = nn.Parameter(torch.tensor(math.log(value), dtype=torch.float32))
        else:
            self.value = float(value)

    def forward(self):
        """The temperature now (a 0-d tensor when learnt, a float when fixed)."""
        if hasattr(self, 'log_value'):
            return self.log_value.clamp(math.log(0.01), math.log(100.0)).exp()
        return self.value


def cosine_monitor(voice, face, pos, neg, valid=None):
    """The loss-line values of a cosine loss: ``dist_pos`` = 1 - the mean positive cosine, ``dist_neg`` = 1 - the
    mean negative cosine (over ``valid`` entries), ``spread`` = the mean distance of the unit face embeddings to
    their mean over the mean distance of the unit voice-face pairs."""
    pos, neg = pos.detach(), neg.detach()
    unit_voice, unit_face = F.normalize(voice.detach(), dim=-1), F.normalize(face.detach(), dim=-1)
    chord = (unit_voice - unit_face).norm(dim=-1).mean()
    return {'dist_pos': 1 - pos.mean(), 'dist_neg': 1 - mean_negative(neg, valid),
            'spread': embedding_spread(unit_face, chord)}


class CosineLoss(Loss):
    """A cosine loss with a (fixed or learnt) temperature; ``temperature`` joins the loss line."""

    monitor_names = ('dist_pos', 'dist_neg', 'spread', 'temperature')

    def __init__(self, opt):
        super().__init__(opt)
        self.temperature = Temperature(opt.temperature, getattr(opt, 'learn_temperature', False))

    def describe(self):
        """One line for logs."""
        learnt = hasattr(self.temperature, 'log_value')
        value = self.temperature()
        value = float(value.detach()) if isinstance(value, torch.Tensor) else value
        return f'{type(self).__name__}, temperature {value:g}{" (learnt)" if learnt else ""}'


class InfoNCEPaired(CosineLoss):
    """``infonce_paired``, the journal's pre-training loss: each voice picks its own face among its K sampled
    negatives' faces, logits ``cos / temperature``. In-batch, the negatives of a voice are the faces of the other
    identities of the batch (same-identity faces get no probability; anchors with fewer than K are left out)."""

    def forward(self, out):
        """The loss of one step's embeddings and its monitoring values."""
        t = self.temperature()
        if not self.in_batch:
            logits = cosine_logits_paired(out.voice_emb, out.face_emb, out.neg_emb, t)
            loss = first_is_right(logits)
            monitor = cosine_monitor(out.voice_emb, out.face_emb, logits[:, 0] * t, logits[:, 1:] * t)
        else:
            sims = F.normalize(out.voice_emb, dim=-1) @ F.normalize(out.face_emb, dim=-1).t()   # (B, B)
            other = out.identity.unsqueeze(1) != out.identity.unsqueeze(0)
            eye = torch.eye(len(sims), dtype=torch.bool, device=sims.device)
            logits = (sims / t).masked_fill(~(other | eye), float('-inf'))
            used = other.sum(1) >= self.n_negatives
            per_anchor = F.cross_entropy(logits, torch.arange(len(sims), device=sims.device), reduction='none')
            loss = (per_anchor * used).sum() / used.sum().clamp(min=1)
            monitor = cosine_monitor(out.voice_emb, out.face_emb, sims.diagonal(), sims, other)
            monitor['in_batch_skipped'] = (~used).sum()
        monitor['temperature'] = torch.as_tensor(t).detach()
        return loss, monitor

    @property
    def monitor_names(self):
        """The loss line's values (in-batch adds the anchors left out)."""
        return CosineLoss.monitor_names + (('in_batch_skipped',) if self.in_batch else ())


class FakePairs(CosineLoss):
    """``fake_pairs``, the journal's fine-tuning loss on a deepfake set: the real window's voice-face cosine against
    the cosines of K fake windows (each fake's voice with its own face), logits ``cos / temperature``, the real pair
    to be picked. Needs sampled negatives that bring their voices (``--dataset_mode DFDC`` with a split's training
    part)."""

    layouts = ('sampled',)
    needs_neg_voices = True

    def forward(self, out):
        """The loss of one step's embeddings and its monitoring values."""
        assert out.neg_voice_emb is not None, 'fake_pairs needs the voices of the fake windows (neg_voices)'
        t = self.temperature()
        logits = fake_pair_logits(out.voice_emb, out.face_emb, out.neg_voice_emb, out.neg_emb, t)
        monitor = cosine_monitor(out.voice_emb, out.face_emb, logits[:, 0] * t, logits[:, 1:] * t)
        monitor['temperature'] = torch.as_tensor(t).detach()
        return first_is_right(logits), monitor


# --loss names -> a builder taking the options
LOSSES = {
    'triplet': lambda opt: DistanceLoss(opt, 'triplet'),
    'infonce': lambda opt: DistanceLoss(opt, 'infonce'),
    'infonce_paired': InfoNCEPaired,
    'fake_pairs': FakePairs,
}
LOSS_HELP = ('triplet: hinge max(0, d_pos - d_neg + margin) on L2 distances, summed over the negatives (the 2022 '
             'release); infonce: softmax cross-entropy over -distance / temperature; infonce_paired: each voice picks '
             'its own face among its negatives by cosine / temperature (the journal\'s pre-training); fake_pairs: '
             'the real pair\'s cosine against K fake pairs\' (each fake window\'s voice with its own face), the '
             'journal\'s fine-tuning on a deepfake set (--dataset_mode DFDC)')


def needs_neg_voices(name):
    """Whether the loss ``name`` reads fake voices (its class says so; the distance losses do not)."""
    return bool(getattr(LOSSES[name], 'needs_neg_voices', False))


def build_loss(opt, name):
    """The Loss module ``name`` for the options ``opt``; ValueError when it does not fit ``--negatives``."""
    loss = LOSSES[name](opt)
    if opt.negatives not in loss.layouts:
        raise ValueError(f'--loss {name} works with --negatives {" or ".join(loss.layouts)}, not {opt.negatives}')
    return loss
