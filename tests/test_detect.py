"""scripts/detect.py: one video in, a score, a verdict by the stored validation threshold, and a JSON line."""
import json

import pytest

import train_DF
from models.checkpoint import read as read_checkpoint
from scripts import detect
from tests.conftest import QUICK, TINY, vox
from tests.media import blank_frame, face_frame, tone, write_video


@pytest.fixture(scope='module')
def checkpoint(sample_root, tmp_path_factory):
    base = tmp_path_factory.mktemp('detect')
    args = ['--dataroot', vox(sample_root), '--name', 'd', *TINY, '--batch_size', '2', '--negatives', 'sampled',
            '--n_epochs', '1',
            '--n_epochs_decay', '0', '--num_threads', '0', '--gpu_ids', '-1', '--no_flip', '--display_id', '0',
            '--checkpoints_dir', str(base / 'checkpoints'), *QUICK]
    assert train_DF.main(args) == 0
    return ['--name', 'd', '--checkpoints_dir', str(base / 'checkpoints'), '--gpu_ids', '-1'], base


@pytest.fixture(scope='module')
def videos(tmp_path_factory):
    root = tmp_path_factory.mktemp('videos')
    write_video(root / 'good.mkv', face_frame(), seconds=7.0, audio=tone(7.0))
    write_video(root / 'mute.mp4', face_frame(), audio=None)
    write_video(root / 'faceless.mkv', blank_frame(), audio=tone(4.0))
    (root / 'broken.mp4').write_bytes(b'not a video at all' * 100)
    return root


def last_json(text):
    return json.loads(text.strip().splitlines()[-1])


def test_detect_scores_a_video_and_decides_by_the_validation_threshold(checkpoint, videos, capsys):
    args, base = checkpoint
    assert detect.main([str(videos / 'good.mkv'), *args, '--windows', '3']) == 0
    out = capsys.readouterr().out
    result = last_json(out)
    _, meta = read_checkpoint(str(base / 'checkpoints' / 'd' / 'best_net_G_audio.pth'))
    threshold = meta['val']['eer_threshold']
    assert result['epoch'] == 'best' and result['threshold'] == pytest.approx(threshold)
    assert result['windows_scored'] == 3 and len(result['windows']) == 3
    window_scores = [w['score'] for w in result['windows']]
    assert result['score'] == pytest.approx(sum(window_scores) / 3)
    assert result['verdict'] == ('real' if result['score'] >= threshold else 'fake')
    assert f'verdict: {result["verdict"].upper()}' in out
    # --json: the JSON line alone; another aggregate
    assert detect.main([str(videos / 'good.mkv'), *args, '--windows', '3', '--json', '--video_agg', 'max']) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1 and json.loads(lines[0])['score'] == pytest.approx(max(window_scores), abs=1e-5)


@pytest.mark.parametrize('name, status, error', [('mute.mp4', 3, 'no_audio'), ('faceless.mkv', 4, 'no_face'),
                                                 ('broken.mp4', 5, 'unreadable')])
def test_detect_exit_status_for_unusable_videos(checkpoint, videos, capsys, name, status, error):
    args, _ = checkpoint
    assert detect.main([str(videos / name), *args]) == status
    captured = capsys.readouterr()
    assert last_json(captured.out)['error'] == error and name in captured.err


def test_detect_without_a_checkpoint_or_video(videos, tmp_path, capsys):
    assert detect.main([str(videos / 'good.mkv'), '--name', 'none', '--checkpoints_dir', str(tmp_path)]) == 2
    assert detect.main([str(tmp_path / 'missing.mp4'), '--name', 'none']) == 2
    assert 'no such file' in capsys.readouterr().err
