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


# -- the journal's losses and scores -------------------------------------------------------------------------------
def loss_options(**values):
    from argparse import Namespace
    base = dict(n_negatives=2, negatives='sampled', temperature=0.1, learn_temperature=False, margin=0.25,
                margin_mode='relative')
    return Namespace(**{**base, **values})


def test_cosine_score_by_hand_and_as_the_journal_computes_it():
    from tests import journal_reference
    voice = torch.tensor([[3.0, 4.0], [1.0, 0.0]])
    face = torch.tensor([[4.0, 3.0], [-2.0, 0.0]])
    assert losses.cosine(voice, face).tolist() == pytest.approx([24 / 25, -1.0])
    v, f = torch.randn(5, 16), torch.randn(5, 16)
    assert torch.allclose(losses.cosine(v, f), journal_reference.cosine_score(v, f))
    scores = torch.tensor([0.9, -0.5])
    assert losses.score_distance('cosine', scores).tolist() == pytest.approx([0.1, 1.5])
    assert losses.score_distance('neg_l2', scores).tolist() == pytest.approx([-0.9, 0.5])


def test_infonce_paired_by_hand():
    """One voice (1, 0), its face (1, 0), negatives (0, 1) and (-1, 0): cosines 1, 0, -1; temperature 0.5."""
    loss = losses.InfoNCEPaired(loss_options(temperature=0.5))
    out = losses.Outputs(torch.tensor([[2.0, 0.0]]), torch.tensor([[3.0, 0.0]]),
                         neg_emb=torch.tensor([[[0.0, 5.0], [-1.0, 0.0]]]))
    value, monitor = loss(out)
    expected = -math.log(math.exp(2) / (math.exp(2) + math.exp(0) + math.exp(-2)))
    assert value.item() == pytest.approx(expected, rel=1e-6)
    assert monitor['dist_pos'].item() == pytest.approx(0.0, abs=1e-6)     # 1 - cos 1
    assert monitor['dist_neg'].item() == pytest.approx(1.5)               # 1 - mean(0, -1)
    assert monitor['temperature'].item() == pytest.approx(0.5)


def test_infonce_paired_equals_the_journals_info_nce():
    from tests import journal_reference
    torch.manual_seed(0)
    voice, face, neg = torch.randn(6, 8), torch.randn(6, 8), torch.randn(6, 3, 8)
    ours, _ = losses.InfoNCEPaired(loss_options(n_negatives=3))(losses.Outputs(voice, face, neg_emb=neg))
    assert ours.item() == pytest.approx(journal_reference.info_nce_paired(voice, face, neg, 0.1).item(), rel=1e-6)


def test_infonce_paired_in_batch_masks_same_identity_faces():
    """Voices 0, 1, 2 of identities 0, 1, 1: voice 1's negatives are face 0 only (face 2 is its own person)."""
    voice = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    face = torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]])
    loss = losses.InfoNCEPaired(loss_options(negatives='in_batch', n_negatives=1, temperature=1.0))
    value, monitor = loss(losses.Outputs(voice, face, identity=torch.tensor([0, 1, 1])))

    def ce(own, negatives):
        return -math.log(math.exp(own) / (math.exp(own) + sum(math.exp(c) for c in negatives)))
    # voice 0: own 1, negatives faces 1 (cos 0.6) and 2 (0); voice 1: own 0.8, negative face 0 (0); voice 2: own 1,
    # negative face 0 (0)
    expected = (ce(1.0, [0.6, 0.0]) + ce(0.8, [0.0]) + ce(1.0, [0.0])) / 3
    assert value.item() == pytest.approx(expected, rel=1e-6) and monitor['in_batch_skipped'].item() == 0


def test_fake_pairs_by_hand_and_as_the_journal_computes_it():
    from tests import journal_reference
    loss = losses.FakePairs(loss_options(temperature=1.0, n_negatives=1))
    voice, face = torch.tensor([[1.0, 0.0]]), torch.tensor([[1.0, 1.0]])       # cos = 0.7071
    neg_voice, neg_face = torch.tensor([[[0.0, 2.0]]]), torch.tensor([[[0.0, 3.0]]])   # a fake pair that agrees: 1
    value, monitor = loss(losses.Outputs(voice, face, neg_emb=neg_face, neg_voice_emb=neg_voice))
    c = 2 ** -0.5
    assert value.item() == pytest.approx(-math.log(math.exp(c) / (math.exp(c) + math.e)), rel=1e-6)
    assert monitor['dist_neg'].item() == pytest.approx(0.0, abs=1e-6)
    torch.manual_seed(1)
    args = torch.randn(4, 8), torch.randn(4, 8), torch.randn(4, 10, 8), torch.randn(4, 10, 8)
    ours, _ = losses.FakePairs(loss_options(n_negatives=10))(losses.Outputs(args[0], args[1], neg_emb=args[3],
                                                                            neg_voice_emb=args[2]))
    assert ours.item() == pytest.approx(journal_reference.fake_pair_nce(*args, 0.1).item(), rel=1e-6)
    with pytest.raises(ValueError, match='sampled'):
        losses.build_loss(loss_options(negatives='in_batch'), 'fake_pairs')


def test_a_learnt_temperature_is_a_parameter_that_moves():
    loss = losses.InfoNCEPaired(loss_options(learn_temperature=True, temperature=0.1))
    (param,) = list(loss.parameters())
    assert param.item() == pytest.approx(math.log(0.1))
    torch.manual_seed(0)
    value, monitor = loss(losses.Outputs(torch.randn(4, 8), torch.randn(4, 8), neg_emb=torch.randn(4, 2, 8)))
    value.backward()
    assert param.grad is not None and param.grad.item() != 0
    assert monitor['temperature'].item() == pytest.approx(0.1, rel=1e-6)
    assert not list(losses.InfoNCEPaired(loss_options()).parameters())     # a fixed one is no parameter
