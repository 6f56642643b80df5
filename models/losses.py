"""Training losses and the score of the DFD model, as pure functions: tensors in, tensors out, no state.

Every loss takes voice-to-face distances, so the score stays what the method defines (minus the distance between
a voice embedding and a face embedding) whatever the loss. Two layouts:

* sampled negatives: ``d_pos`` (B,) anchor-to-own-face distances and ``d_neg`` (B, K) anchor-to-negative distances;
* in-batch negatives: ``dist`` (B, B) with ``dist[i, j]`` = distance from voice i to face j (the diagonal holds the
  positives) and ``other`` (B, B) bool, True where face j is of another identity than voice i (a valid negative).

``--loss`` picks the family: ``triplet`` (hinge with ``--margin``) or ``infonce`` (softmax over negative distances
with ``--temperature``). ``LOSSES`` maps each name to its sampled and in-batch forms and the option that sets
their scale. With ``--margin_mode relative``
the model divides all distances by ``mean_negative`` before calling them, so margin and temperature are fractions
of the typical negative distance.
"""
import torch
import torch.nn.functional as F


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


# --loss names -> (sampled form, in-batch form, the option that gives their scale argument)
LOSSES = {
    'triplet': (triplet_sampled, triplet_in_batch, 'margin'),
    'infonce': (infonce_sampled, infonce_in_batch, 'temperature'),
}


def neg_l2(voice_emb, face_emb):
    """The method's score of voice-face pairs, (B, E) each -> (B,): minus the L2 distance (higher = more real)."""
    return -F.pairwise_distance(voice_emb, face_emb)


# --score names -> score functions; the model config stores the name, so a checkpoint is scored as it was trained
SCORES = {'neg_l2': neg_l2}
