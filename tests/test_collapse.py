"""The collapse monitor: it fires on encoders whose output does not depend on the input, and stays silent on ones
that do; --stop_on_collapse ends a collapsed run with a non-zero status and keeps what was saved before."""
import json

import torch

import train_DF
from tests.conftest import TINY, vox
from tests.test_speed_paths import batch, train_model
from util.collapse import CollapseMonitor, distance_spread, same_to_three_figures
from util.visualizer import read_metrics


def loss_line(model, data):
    model.set_input(data)
    model.forward()
    model.compute_loss()
    return model.get_current_losses()


def test_monitor_fires_on_a_face_encoder_with_constant_output():
    model = train_model(negatives='in_batch', n_negatives=2)
    head = model.netG_video.mlp_head[0]
    with torch.no_grad():   # every face gets the same embedding: ReLU(bias)
        head.weight.zero_()
        head.bias.uniform_(0.5, 1.5)
    data = batch(b=6, in_batch=True)
    monitor = CollapseMonitor()
    losses = loss_line(model, data)
    assert losses['spread'] < 1e-6
    assert same_to_three_figures(losses['dist_pos'], losses['dist_neg'])
    assert monitor.observe_losses(losses, 1, 200) is None         # one line is not enough
    event = monitor.observe_losses(losses, 1, 300)
    assert event['type'] == 'collapse' and event['total_iters'] == 300
    assert any('spread' in r for r in event['reasons']) and any('dist_pos' in r for r in event['reasons'])
    assert monitor.observe_losses(losses, 1, 400) is None         # reported once, not on every line


def test_equal_distances_count_only_after_the_first_steps():
    """An untrained model has dist_pos equal to dist_neg too; only later is that a sign of collapse."""
    monitor = CollapseMonitor()
    line = {'dist_pos': 296.6, 'dist_neg': 296.7, 'spread': 0.37}
    assert [monitor.observe_losses(line, 1, step) for step in (1, 2, 3, 50, 100)] == [None] * 5
    assert monitor.observe_losses(line, 1, 150) is None
    event = monitor.observe_losses(line, 1, 200)
    assert event['reasons'] == ['dist_pos 297 equals dist_neg 297 on 2 loss lines in a row']


def test_monitor_stays_silent_on_encoders_whose_output_depends_on_the_input():
    model = train_model(negatives='in_batch', n_negatives=2, token_init_std=0.02)
    monitor = CollapseMonitor()
    losses = loss_line(model, batch(b=6, in_batch=True))
    assert losses['spread'] > 0.1
    for step in range(5):
        assert monitor.observe_losses(losses, 1, step) is None
    assert monitor.observe_validation(0.8, 0.3, 1, 5) is None


def test_validation_signals_and_recovery():
    monitor = CollapseMonitor()
    assert monitor.observe_validation(0.51, 0.3, 1, 10) is None      # the first validation may precede learning
    event = monitor.observe_validation(0.51, 0.3, 2, 20)
    assert event['type'] == 'collapse' and 'chance' in event['reasons'][0] and monitor.collapsed_validations == 1
    assert event['new']                                               # this one starts the collapse: a warning
    event = monitor.observe_validation(0.75, 0.001, 3, 30)            # distances all alike: collapsed too
    assert event['type'] == 'collapse' and monitor.collapsed_validations == 2 and not event['new']
    event = monitor.observe_validation(0.8, 0.3, 4, 40)
    assert event['type'] == 'collapse_end' and monitor.collapsed_validations == 0
    assert monitor.observe_validation(0.85, 0.3, 5, 50) is None


def test_distance_spread():
    assert distance_spread([40.3, 40.3, 40.3]) == 0.0
    assert distance_spread([]) == 0.0
    assert abs(distance_spread([1.0, 3.0]) - 0.5) < 1e-12           # std 1 over mean 2


def test_released_recipe_collapses_is_reported_and_stopped(sample_root, tmp_path):
    """The released recipe on the tiny configuration stays collapsed; the monitor says so everywhere it should."""
    ck = tmp_path / 'ck'
    code = train_DF.main(['--dataroot', vox(sample_root), *TINY, '--name', 'rel', '--checkpoints_dir', str(ck),
                          '--gpu_ids', '-1', '--num_threads', '0', '--display_id', '0', '--recipe', 'released',
                          '--n_epochs', '3', '--n_epochs_decay', '0', '--print_freq', '4', '--save_latest_freq', '0',
                          '--bn_recalib_batches', '2', '--stop_on_collapse', '2'])
    assert code == 2
    records = read_metrics(ck / 'rel' / 'metrics.jsonl')
    events = [r for r in records if r['type'] == 'collapse']
    assert events and 'COLLAPSE' in events[0]['message'] and 'Try' in events[0]['message']
    assert [e['new'] for e in events] == [True] + [False] * (len(events) - 1)   # one warning, then plain lines
    assert [r['epoch'] for r in records if r['type'] == 'val'] == [1, 2]   # stopped at the second validation
    assert 'COLLAPSE' in (ck / 'rel' / 'web' / 'index.html').read_text()
    assert 'COLLAPSE' in (ck / 'rel' / 'loss_log.txt').read_text()
    assert (ck / 'rel' / '1_net_G_video.pth').is_file()                    # epoch checkpoints are kept
    assert json.loads((ck / 'rel' / 'train_opt.json').read_text())['margin'] == 100.0
