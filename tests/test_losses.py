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


# -- written against the survivors of the mutation run (docs/mutation.md) ------------------------------------------
def ce_of(logits, target=0):
    """Cross-entropy of ``target`` among ``logits`` (a list of floats), by hand."""
    return -math.log(math.exp(logits[target]) / sum(math.exp(x) for x in logits))


def test_first_is_right_gives_masked_columns_no_probability():
    logits = torch.tensor([[1.0, 2.0, 3.0], [0.5, 0.0, -1.0]])
    valid = torch.tensor([[True, False, True], [True, True, False]])
    expected = (ce_of([1.0, 3.0]) + ce_of([0.5, 0.0])) / 2
    assert losses.first_is_right(logits, valid).item() == pytest.approx(expected, rel=1e-6)
    assert losses.first_is_right(logits).item() == pytest.approx((ce_of([1, 2, 3]) + ce_of([0.5, 0, -1])) / 2,
                                                                 rel=1e-6)


def test_infonce_in_batch_divides_by_the_temperature_and_leaves_out_anchors_without_enough_negatives():
    dist = torch.tensor([[1.0, 2.0, 4.0],
                         [3.0, 1.0, 2.0],
                         [5.0, 1.0, 2.0]])
    identity = torch.tensor([0, 0, 1])
    other = identity.unsqueeze(1) != identity.unsqueeze(0)
    # temperature 0.5: logits -2 x distance. Row 0: own 1, negative face 2 (4); row 1: own 1, face 2 (2);
    # row 2: own 2, faces 0 (5) and 1 (1). Columns: face 0: own 1, voice 2 (5); face 1: own 1, voice 2 (1);
    # face 2: own 2, voices 0 (4) and 1 (2).
    rows = [ce_of([-2, -8]), ce_of([-2, -4]), ce_of([-4, -10, -2])]
    cols = [ce_of([-2, -10]), ce_of([-2, -2]), ce_of([-4, -8, -4])]
    per_anchor = [(r + c) / 2 for r, c in zip(rows, cols)]
    loss, skipped = losses.infonce_in_batch(dist, other, 0.5, k=1)
    assert loss.item() == pytest.approx(sum(per_anchor) / 3, rel=1e-6) and skipped.item() == 0
    # k = 2: anchors 0 and 1 have one other-identity face each and are left out; the loss is anchor 2's alone
    loss, skipped = losses.infonce_in_batch(dist, other, 0.5, k=2)
    assert loss.item() == pytest.approx(per_anchor[2], rel=1e-6) and skipped.item() == 2
    # no anchor with enough negatives: 0, not a division by zero
    loss, skipped = losses.infonce_in_batch(dist, other, 0.5, k=3)
    assert loss.item() == 0.0 and skipped.item() == 3


def test_cosine_monitor_by_hand():
    voice = torch.tensor([[3.0, 4.0], [0.0, 2.0]])        # unit: (0.6, 0.8), (0, 1)
    face = torch.tensor([[0.0, 5.0], [3.0, 4.0]])         # unit: (0, 1), (0.6, 0.8) (per row, not per column)
    pos = torch.tensor([0.8, 0.0])
    neg = torch.tensor([[0.8, 0.6], [0.0, 9.0]])
    valid = torch.tensor([[False, True], [True, False]])
    monitor = losses.cosine_monitor(voice, face, pos, neg, valid)
    assert set(monitor) == {'dist_pos', 'dist_neg', 'spread'}
    assert monitor['dist_pos'].item() == pytest.approx(1 - 0.4)
    assert monitor['dist_neg'].item() == pytest.approx(1 - (0.6 + 0.0) / 2)      # the valid entries only
    assert losses.cosine_monitor(voice, face, pos, neg)['dist_neg'].item() == pytest.approx(1 - 10.4 / 4)
    # both unit pairs are sqrt(0.4) apart; the unit faces lie sqrt(0.1) from their mean (0.3, 0.9): spread 0.5
    assert monitor['spread'].item() == pytest.approx(0.5, rel=1e-6)


def test_faces_of_the_step_are_the_positives_then_the_sampled_negatives():
    face, neg = torch.tensor([[1.0, 0.0], [0.0, 1.0]]), torch.arange(12.0).reshape(2, 3, 2)
    assert torch.equal(losses.sampled_or_in_batch_faces(losses.Outputs(face, face)), face)
    both = losses.sampled_or_in_batch_faces(losses.Outputs(face, face, neg_emb=neg))
    assert torch.equal(both, torch.cat([face, neg.reshape(6, 2)]))


def test_infonce_paired_in_batch_temperature_anchors_left_out_and_its_monitor():
    """Identities 0, 0, 1 (unit embeddings, so the cosines are the dot products), temperature 0.5, K = 1 and 2."""
    voice = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]])
    face = torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]])
    identity = torch.tensor([0, 0, 1])
    # cosines: voice 0: faces 1, 0.6, 0; voice 1: 0, 0.8, 1; voice 2: 0.6, 0.36 + 0.64 = 1.0, 0.8. Logits (cos / 0.5)
    # of each voice's own face first, then its other-identity faces: voice 0: 2 | 0; voice 1: 1.6 | 2; voice 2: 1.6 |
    # 1.2, 2 (face 1, of identity 0, is voice 1's own face, so voice 0's only negative is face 2)
    rows = [ce_of([2.0, 0.0]), ce_of([1.6, 2.0]), ce_of([1.6, 1.2, 2.0])]
    for k, used in ((1, [0, 1, 2]), (2, [2])):
        loss = losses.InfoNCEPaired(loss_options(negatives='in_batch', n_negatives=k, temperature=0.5))
        value, monitor = loss(losses.Outputs(voice, face, identity=identity))
        assert value.item() == pytest.approx(sum(rows[i] for i in used) / len(used), rel=1e-6)
        assert monitor['in_batch_skipped'].item() == 3 - len(used)
        # dist_neg over the other-identity pairs only: (0, 2) cos 0, (1, 2) cos 1, (2, 0) 0.6, (2, 1) 1.0
        assert monitor['dist_neg'].item() == pytest.approx(1 - (0.0 + 1.0 + 0.6 + 1.0) / 4, rel=1e-6)
        assert monitor['dist_pos'].item() == pytest.approx(1 - (1.0 + 0.8 + 0.8) / 3, rel=1e-6)
        assert monitor['temperature'].item() == 0.5


def test_fake_pairs_monitor_holds_the_cosines_not_the_logits():
    loss = losses.FakePairs(loss_options(temperature=0.25, n_negatives=2))
    voice, face = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.6, 0.8]])            # cos 0.6
    neg_voice = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])
    neg_face = torch.tensor([[[0.0, 1.0], [0.0, 1.0]]])                              # cos 0 and 1
    value, monitor = loss(losses.Outputs(voice, face, neg_emb=neg_face, neg_voice_emb=neg_voice))
    assert value.item() == pytest.approx(ce_of([2.4, 0.0, 4.0]), rel=1e-6)
    assert monitor['dist_pos'].item() == pytest.approx(0.4, rel=1e-6)
    assert monitor['dist_neg'].item() == pytest.approx(0.5, rel=1e-6)
    assert monitor['temperature'].item() == 0.25
    with pytest.raises(AssertionError, match=r'^fake_pairs needs the voices of the fake windows \(neg_voices\)$'):
        loss(losses.Outputs(voice, face, neg_emb=neg_face))


def test_a_learnt_temperature_stays_within_its_bounds_and_the_option_may_be_absent():
    temperature = losses.Temperature(0.1, learn=True)
    assert temperature.log_value.dtype == torch.float32
    with torch.no_grad():
        temperature.log_value.fill_(math.log(0.001))
    assert temperature().item() == pytest.approx(0.01, rel=1e-5)
    with torch.no_grad():
        temperature.log_value.fill_(math.log(1000.0))
    assert temperature().item() == pytest.approx(100.0, rel=1e-5)
    options = loss_options()
    del options.learn_temperature          # options of a run made before --learn_temperature existed
    assert not list(losses.InfoNCEPaired(options).parameters())


def test_each_loss_describes_itself_in_one_line():
    assert losses.DistanceLoss(loss_options(), 'triplet').describe() == 'triplet, margin 0.25 (relative)'
    assert losses.DistanceLoss(loss_options(margin_mode='absolute', margin=100.0), 'triplet').describe() == \
        'triplet, margin 100'
    assert losses.DistanceLoss(loss_options(margin_mode='absolute'), 'infonce').describe() == \
        'infonce, temperature 0.1'
    assert losses.InfoNCEPaired(loss_options(temperature=0.07)).describe() == 'InfoNCEPaired, temperature 0.07'
    assert losses.FakePairs(loss_options(learn_temperature=True)).describe() == \
        'FakePairs, temperature 0.1 (learnt)'
    assert losses.Loss(loss_options()).describe() == 'Loss'


def test_hinges_at_exactly_zero_carry_no_gradient_and_one_valid_entry_is_a_mean_of_one():
    d_pos, d_neg = torch.tensor([1.0, 1.0]), torch.tensor([[2.0, 3.0], [0.5, 1.0]])
    # hinges with margin 1: 0 (exactly), -1, 1.5, 1: two of four above zero
    assert losses.active_fraction(d_pos, d_neg, 1.0).item() == pytest.approx(0.5)
    valid = torch.tensor([[False, False], [True, False]])
    assert losses.active_fraction(d_pos, d_neg, 1.0, valid).item() == 1.0
    assert losses.mean_negative(d_neg, valid).item() == 0.5


def test_triplet_sampled_averages_over_the_anchors_not_the_negatives():
    # three anchors, one negative each: hinges 1, 0, 2 with margin 1 -> mean over anchors 1, summed over 1 negative
    d_pos, d_neg = torch.tensor([1.0, 0.0, 2.0]), torch.tensor([[1.0], [3.0], [1.0]])
    assert losses.triplet_sampled(d_pos, d_neg, 1.0).item() == pytest.approx(1.0)


def test_neg_l2_and_which_losses_need_fake_voices():
    assert losses.neg_l2(torch.tensor([[0.0, 0.0], [1.0, 1.0]]), torch.tensor([[3.0, 4.0], [1.0, 1.0]])).tolist() \
        == pytest.approx([-5.0, 0.0], abs=1e-5)
    assert [losses.needs_neg_voices(n) for n in ('triplet', 'infonce', 'infonce_paired', 'fake_pairs')] == \
        [False, False, False, True]
    with pytest.raises(ValueError, match=r'^--loss fake_pairs works with --negatives sampled, not in_batch$'):
        losses.build_loss(loss_options(negatives='in_batch'), 'fake_pairs')


def test_distance_loss_sampled_by_hand():
    """Voice (1, 2), its face (4, 6), negative faces (7, 10) and (1, 3): distances 5 | 10 and 1."""
    out = losses.Outputs(torch.tensor([[1.0, 2.0]]), torch.tensor([[4.0, 6.0]]),
                         neg_emb=torch.tensor([[[7.0, 10.0], [1.0, 3.0]]]))
    loss = losses.DistanceLoss(loss_options(), 'triplet')       # relative margin 0.25: distances / 5.5
    assert loss.monitor_names == ('dist_pos', 'dist_neg', 'active', 'spread')
    value, monitor = loss(out)
    assert value.item() == pytest.approx((5 - 1) / 5.5 + 0.25, rel=1e-6)     # the other hinge is below zero
    assert (monitor['dist_pos'].item(), monitor['dist_neg'].item(), monitor['active'].item()) == \
        pytest.approx((5.0, 5.5, 0.5))
    faces = torch.tensor([[4.0, 6.0], [7.0, 10.0], [1.0, 3.0]])
    assert monitor['spread'].item() == pytest.approx((faces - faces.mean(0)).norm(dim=1).mean().item() / 5, rel=1e-6)
    absolute = losses.DistanceLoss(loss_options(margin_mode='absolute', margin=1.0), 'triplet')
    assert absolute(out)[0].item() == pytest.approx(0 + (5 - 1 + 1), rel=1e-6)
    infonce = losses.DistanceLoss(loss_options(margin_mode='absolute', temperature=2.0), 'infonce')
    assert infonce(out)[0].item() == pytest.approx(ce_of([-2.5, -5.0, -0.5]), rel=1e-6)


def test_distance_loss_in_batch_by_hand():
    """Voices (0, 0), (0, 3) and faces (3, 4), (0, 0) of two identities: distances [[5, 0], [sqrt(10), 3]]."""
    out = losses.Outputs(torch.tensor([[0.0, 0.0], [0.0, 3.0]]), torch.tensor([[3.0, 4.0], [0.0, 0.0]]),
                         identity=torch.tensor([0, 1]))
    loss = losses.DistanceLoss(loss_options(negatives='in_batch', n_negatives=1, margin_mode='absolute', margin=0.1),
                               'triplet')
    assert loss.monitor_names == ('dist_pos', 'dist_neg', 'active', 'spread', 'in_batch_skipped')
    value, monitor = loss(out)
    # anchor 0: 5 - 0 + 0.1; anchor 1: 3 - sqrt(10) + 0.1 < 0 (inactive): the diagonal is no negative
    assert value.item() == pytest.approx((5 + 0.1 + 0) / 2, rel=1e-6)
    assert monitor['dist_neg'].item() == pytest.approx(math.sqrt(10) / 2, rel=1e-6)
    assert monitor['in_batch_skipped'].item() == 0 and monitor['active'].item() == 0.5
    with pytest.raises(AssertionError, match=r"^in-batch negatives need the batch's identity labels$"):
        loss(losses.Outputs(out.voice_emb, out.face_emb))


def test_in_batch_distances_keep_their_precision_far_from_the_origin():
    """Thirty pairs near (10^4, 10^4), each voice 0.5 from its face: distances from the matrix-product shortcut lose
    the 0.5 in float32 rounding; the exact ones (``compute_mode='donot_use_mm_for_euclid_dist'``) keep it."""
    voice = torch.full((30, 2), 1e4) + torch.arange(30.0).unsqueeze(1) * 3
    face = voice + torch.tensor([0.5, 0.0])
    loss = losses.DistanceLoss(loss_options(negatives='in_batch', n_negatives=1, margin_mode='absolute'), 'triplet')
    _, monitor = loss(losses.Outputs(voice, face, identity=torch.arange(30)))
    assert monitor['dist_pos'].item() == pytest.approx(0.5, rel=1e-4)
