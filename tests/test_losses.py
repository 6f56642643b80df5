"""The losses of models/losses.py against values worked out by hand."""
import math

import pytest
import torch

from models import losses


def test_triplet_sampled_sums_the_negatives_and_averages_the_anchors():
    d_pos = torch.tensor([1.0, 2.0])
    d_neg = torch.tensor([[3.0, 0.5], [2.0, 10.0]])
    # anchor 0: max(0, 1-3+1)=0, max(0, 1-0.5+1)=1.5; anchor 1: max(0, 2-2+1)=1, max(0, 2-10+1)=0
    # mean over anchors per negative slot: (0+1)/2 + (1.5+0)/2 = 1.25
    assert losses.triplet_sampled(d_pos, d_neg, 1.0).item() == pytest.approx(1.25)


def test_triplet_in_batch_is_k_times_the_mean_hinge_over_valid_negatives():
    dist = torch.tensor([[1.0, 3.0, 0.5],
                         [2.0, 2.0, 4.0],
                         [5.0, 1.0, 3.0]])
    other = torch.tensor([[False, True, True], [True, False, False], [True, False, False]])
    # anchor 0: negatives 3.0 and 0.5, hinges max(0, 1-3+1)=0 and 1.5 -> mean 0.75, times k=1 -> 0.75
    # anchors 1 and 2 have one valid negative each: 2-2+1=1 and 3-5+1<0 -> 1 and 0
    loss, skipped = losses.triplet_in_batch(dist, other, 1.0, 1)
    assert loss.item() == pytest.approx((0.75 + 1.0 + 0.0) / 3) and skipped.item() == 0
    loss, skipped = losses.triplet_in_batch(dist, other, 1.0, 2)   # only anchor 0 has two negatives
    assert loss.item() == pytest.approx(2 * 0.75) and skipped.item() == 2


def test_infonce_sampled_by_hand():
    d_pos, d_neg = torch.tensor([1.0]), torch.tensor([[2.0, 3.0]])
    # logits -1, -2, -3 (temperature 1): -log(e^-1 / (e^-1 + e^-2 + e^-3))
    expected = -math.log(math.exp(-1) / (math.exp(-1) + math.exp(-2) + math.exp(-3)))
    assert losses.infonce_sampled(d_pos, d_neg, 1.0).item() == pytest.approx(expected, rel=1e-6)
    # the temperature divides the distances
    assert losses.infonce_sampled(d_pos * 2, d_neg * 2, 2.0).item() == pytest.approx(expected, rel=1e-6)


def test_infonce_in_batch_masks_same_identity_faces_and_is_symmetric():
    dist = torch.tensor([[1.0, 2.0, 9.0],
                         [2.0, 1.0, 3.0],
                         [9.0, 3.0, 1.0]])
    identity = torch.tensor([0, 1, 1])
    other = identity.unsqueeze(1) != identity.unsqueeze(0)
    loss, skipped = losses.infonce_in_batch(dist, other, 1.0)

    def ce(own, negatives):
        return -math.log(math.exp(-own) / (math.exp(-own) + sum(math.exp(-d) for d in negatives)))
    # row 0 (voice 0): own 1, negatives 2 and 9; rows 1 and 2: own 1, their one other-identity face (voice 0's)
    # columns (faces) give the same here: dist is symmetric
    expected = (ce(1, [2, 9]) + ce(1, [2]) + ce(1, [9])) / 3
    assert loss.item() == pytest.approx(expected, rel=1e-6) and skipped.item() == 0


def test_active_fraction():
    d_pos = torch.tensor([1.0, 2.0])
    d_neg = torch.tensor([[3.0, 1.5], [2.5, 10.0]])
    # hinge arguments with margin 1: -1, 0.5 | 0.5, -7 -> two of four active
    assert losses.active_fraction(d_pos, d_neg, 1.0).item() == pytest.approx(0.5)
    valid = torch.tensor([[True, False], [True, True]])
    assert losses.active_fraction(d_pos, d_neg, 1.0, valid).item() == pytest.approx(1 / 3)


def test_a_collapsed_batch_gives_every_hinge_and_cancelling_gradients():
    """With one face embedding for every face, each hinge term is active and the loss gradient on that shared
    embedding is zero: the fixed point of docs/training.md."""
    voice = torch.randn(4, 8)
    face = torch.randn(1, 8).repeat(4, 1).requires_grad_()
    dist = torch.cdist(voice, face)
    other = ~torch.eye(4, dtype=torch.bool)
    loss, _ = losses.triplet_in_batch(dist, other, 100.0, 3)
    assert losses.active_fraction(dist.diagonal(), dist, 100.0, other).item() == 1.0
    loss.backward()
    assert face.grad.sum(0).abs().max().item() < 1e-5


def test_mean_negative_counts_only_valid_entries():
    dist = torch.tensor([[1.0, 3.0], [5.0, 2.0]])
    assert losses.mean_negative(dist).item() == pytest.approx(2.75)
    other = torch.tensor([[False, True], [True, False]])
    assert losses.mean_negative(dist, other).item() == pytest.approx(4.0)
