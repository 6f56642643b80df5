"""Bad input, crashes and full disks: clear errors, --skip_bad, atomic checkpoints, resuming after SIGKILL, NaN
losses, deterministic runs. Each test is named in the table of docs/bad_input.md."""
import csv
import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import torch

import test_DF
import train_DF
from models.checkpoint import read as read_checkpoint
from models.DFD_model import DFDModel
from tests.conftest import QUICK, TINY, dfdc, vox
from util.visualizer import read_metrics

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def data(sample_root, tmp_path):
    """A private copy of the sample data that a test may damage."""
    shutil.copytree(sample_root, tmp_path / 'data')
    return tmp_path / 'data'


def train_args(root, tmp_path, *extra, name='bad'):
    return ['--dataroot', vox(root), '--name', name, *TINY, '--batch_size', '4', '--negatives', 'sampled',
            '--n_epochs', '1',
            '--n_epochs_decay', '0', '--num_threads', '0', '--gpu_ids', '-1', '--no_flip', '--display_id', '0',
            '--checkpoints_dir', str(tmp_path / 'ck'), '--print_freq', '1', *QUICK, *extra]


def train_face(root):
    """A face image of a training identity (the validation split takes the first sorted identities)."""
    folder = os.path.join(vox(root), 'face', 'id00006')
    video = sorted(os.listdir(folder))[0]
    return os.path.join(folder, video, sorted(os.listdir(os.path.join(folder, video)))[0])


def voice_of(face):
    identity, video, frame = face.split(os.sep)[-3:]
    return os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(face)))), 'voice',
                        f'{identity}_{video}_{os.path.splitext(frame)[0]}.npy')


def skipped(path):
    with open(path, newline='') as handle:
        return list(csv.DictReader(handle))


# ------------------------------------------------------------------------------------------- files that do not fit

def truncate_jpeg(path):
    with open(path, 'rb') as handle:
        head = handle.read(300)
    with open(path, 'wb') as handle:
        handle.write(head)


DAMAGE = {
    'truncated_jpeg': (lambda face: truncate_jpeg(face), 'face', 'cannot read the face image'),
    'not_an_image': (lambda face: open(face, 'wb').write(b'hello'), 'face', 'cannot read the face image'),
    'mel_wrong_shape': (lambda face: np.save(voice_of(face), np.zeros((10, 301), np.float32)), 'voice',
                        'expected a mel spectrogram of shape'),
    'mel_wrong_dtype': (lambda face: np.save(voice_of(face), np.zeros((512, 301), np.int32)), 'voice',
                        'expected floating-point values'),
    'mel_with_nan': (lambda face: np.save(voice_of(face), np.full((512, 301), np.nan, np.float32)), 'voice',
                     'NaN or infinite'),
    'mel_unreadable': (lambda face: open(voice_of(face), 'wb').write(b'\x93NUMPY garbage'), 'voice',
                       'cannot read the mel spectrogram'),
}


@pytest.mark.parametrize('kind', sorted(DAMAGE))
def test_a_bad_file_in_a_loader_worker_is_a_clear_error_in_the_main_process(kind, data, tmp_path, capsys):
    damage, which, message = DAMAGE[kind]
    face = train_face(data)
    damage(face)
    bad_file = face if which == 'face' else voice_of(face)
    assert train_DF.main(train_args(data, tmp_path, '--num_threads', '1')) == 2
    err = capsys.readouterr().err
    error = err[('\n' + err).index('\nerror: '):]                # after the progress lines: one message, no traceback
    assert error.startswith(f'error: {bad_file}: ') and message in error and '--skip_bad' in error
    assert 'Traceback' not in err and 'DataLoader worker' not in err


def test_skip_bad_leaves_bad_samples_out_and_lists_them(data, tmp_path):
    face = train_face(data)
    truncate_jpeg(face)
    assert train_DF.main(train_args(data, tmp_path, '--num_threads', '1', '--skip_bad')) == 0
    rows = skipped(tmp_path / 'ck' / 'bad' / 'skipped_samples.csv')
    assert [(r['phase'], r['path']) for r in rows] == [('train', face)]
    assert 'cannot read the face image' in rows[0]['reason']


def test_scan_problems_face_without_voice_voice_without_face_empty_folder(data, tmp_path, capsys):
    face = train_face(data)
    os.remove(voice_of(face))                                                     # a face without its voice
    orphan = os.path.join(vox(data), 'voice', 'id00007_gone-video_00001.npy')     # a voice without its face
    np.save(orphan, np.zeros((512, 301), np.float32))
    stray = os.path.join(vox(data), 'voice', 'nobody_x_00001.npy')               # no identity folder at all
    np.save(stray, np.zeros((512, 301), np.float32))
    empty = os.path.join(vox(data), 'face', 'id00008', 'empty_video')             # an empty folder
    os.makedirs(empty)
    assert train_DF.main(train_args(data, tmp_path)) == 2
    err = capsys.readouterr().err
    for path in (face, orphan, stray, empty):
        assert path in err
    assert 'no voice file' in err and 'no face image' in err and 'empty folder' in err and 'expected' in err
    assert train_DF.main(train_args(data, tmp_path, '--skip_bad')) == 0
    listed = {r['path'] for r in skipped(tmp_path / 'ck' / 'bad' / 'skipped_samples.csv')}
    assert listed == {face, orphan, stray, empty}


def test_test_set_problems_and_skip_bad_at_test_time(data, tmp_path, capsys):
    assert train_DF.main(train_args(data, tmp_path)) == 0
    results = ['--results_dir', str(tmp_path / 'res'), '--checkpoints_dir', str(tmp_path / 'ck'), '--name', 'bad',
               '--gpu_ids', '-1', '--num_threads', '0']
    real = sorted(os.listdir(os.path.join(dfdc(data), 'real')))[0]
    np.save(os.path.join(dfdc(data), 'audio_feat', os.path.splitext(real)[0] + '.npy'),
            np.zeros((512, 301), np.float16) * np.nan)
    orphan = os.path.join(dfdc(data), 'audio_feat', 'no_such_video.npy')
    np.save(orphan, np.zeros((512, 301), np.float32))
    assert test_DF.main(['--dataroot', dfdc(data), *results]) == 2
    assert orphan in capsys.readouterr().err
    assert test_DF.main(['--dataroot', dfdc(data), *results, '--skip_bad']) == 0
    summary = json.loads((tmp_path / 'res' / 'bad' / 'DFDC_all_sound_latest' / 'summary.json').read_text())
    listed = skipped(tmp_path / 'res' / 'bad' / 'DFDC_all_sound_latest' / 'skipped_samples.csv')
    assert {os.path.basename(r['path']) for r in listed} == {'no_such_video.npy', os.path.splitext(real)[0] + '.npy'}
    mels = [n for n in os.listdir(os.path.join(dfdc(data), 'audio_feat')) if n.endswith('.npy')]
    assert summary['skipped_samples'] == 2 and summary['n_real'] + summary['n_fake'] == len(mels) - 2
    empty = tmp_path / 'empty'
    for folder in ('real', 'fake', 'audio_feat'):
        (empty / folder).mkdir(parents=True)
    assert test_DF.main(['--dataroot', str(empty), *results]) == 2
    assert 'holds no face images' in capsys.readouterr().err


# ------------------------------------------------------------------------------------------- folders and disks

def test_continue_train_without_a_training_state_names_the_file(data, tmp_path, capsys):
    assert train_DF.main(train_args(data, tmp_path, '--continue_train')) == 2        # nothing saved yet
    assert 'latest_net_G_audio.pth not found' in capsys.readouterr().err
    assert train_DF.main(train_args(data, tmp_path)) == 0
    os.remove(tmp_path / 'ck' / 'bad' / 'latest_train_state.pth')
    assert train_DF.main(train_args(data, tmp_path, '--continue_train', '--n_epochs', '2')) == 2
    assert 'latest_train_state.pth not found' in capsys.readouterr().err


def test_unwritable_folders_are_refused_before_any_work(data, tmp_path, capsys):
    blocker = tmp_path / 'a_file'
    blocker.write_text('not a folder')
    with pytest.raises(SystemExit, match='cannot write'):
        train_DF.main(train_args(data, tmp_path, '--checkpoints_dir', str(blocker / 'ck')))
    assert train_DF.main(train_args(data, tmp_path)) == 0
    assert test_DF.main(['--dataroot', dfdc(data), '--name', 'bad', '--checkpoints_dir', str(tmp_path / 'ck'),
                         '--results_dir', str(blocker / 'res'), '--gpu_ids', '-1', '--num_threads', '0']) == 2
    assert 'cannot write the test results' in capsys.readouterr().err


def test_too_little_disk_space_is_refused_before_training(data, tmp_path, small_disk, capsys, monkeypatch):
    disk = small_disk('256k')        # takes the option table, not one epoch's checkpoints (about 12 MB here)
    started = []
    monkeypatch.setattr(DFDModel, 'optimize_parameters', lambda self: started.append(1))
    assert train_DF.main(train_args(data, disk)) == 2
    err = capsys.readouterr().err
    assert 'GiB free' in err and str(disk / 'ck' / 'bad') in err and 'Traceback' not in err
    assert not started


def fill(disk):
    """Take every free byte of ``disk`` (another program filling it)."""
    with open(disk / 'filler', 'ab') as out:
        try:
            while True:
                out.write(b'\0' * 2 ** 20)
                out.flush()
        except OSError as err:
            assert err.errno == errno.ENOSPC


@pytest.mark.parametrize('when', ['saving', 'training'])
def test_a_full_disk_while_saving_keeps_the_previous_checkpoint(data, tmp_path, small_disk, capsys, monkeypatch,
                                                                 when):
    """The disk fills after the start-up space check: just before the checkpoint is written, or at the first step
    (the loss log, the page or a checkpoint meets it first). One error line, the old checkpoint whole."""
    disk = small_disk('160m')     # one run's files (about 35 MB) and the resume's space check (about 40 MB)
    assert train_DF.main(train_args(data, disk)) == 0
    folder = disk / 'ck' / 'bad'
    before = (folder / 'latest_net_G_audio.pth').read_bytes()
    hooked = 'save_networks' if when == 'saving' else 'optimize_parameters'
    original = getattr(DFDModel, hooked)

    def fill_first(self, *args, **kwargs):
        if not (disk / 'filler').exists():
            fill(disk)
        return original(self, *args, **kwargs)
    monkeypatch.setattr(DFDModel, hooked, fill_first)
    assert train_DF.main(train_args(data, disk, '--continue_train', '--n_epochs', '2')) == 2
    err = capsys.readouterr().err
    assert 'No space left on device' in err and 'intact' in err and 'Traceback' not in err
    assert len([line for line in err.splitlines() if line.startswith('error:')]) == 1
    if when == 'saving':
        assert f'could not write {folder / "2_net_G_audio.pth"}: No space left on device' in err
    assert (folder / 'latest_net_G_audio.pth').read_bytes() == before
    assert not [n for n in os.listdir(folder) if n.endswith('.tmp') or n.startswith('.')]


# ------------------------------------------------------------------------------------------- training that goes wrong

def test_a_nan_loss_stops_training_and_keeps_the_last_good_checkpoint(data, tmp_path, capsys, monkeypatch):
    calls = []
    original = DFDModel.compute_loss

    def poisoned(self):
        loss = original(self)
        calls.append(1)
        return loss * float('nan') if len(calls) > 7 else loss      # epoch 1 has 6 steps: NaN early in epoch 2
    monkeypatch.setattr(DFDModel, 'compute_loss', poisoned)
    assert train_DF.main(train_args(data, tmp_path, '--n_epochs', '3', '--print_freq', '4')) == 2
    err = capsys.readouterr().err
    assert 'NaN or infinite' in err and 'last good one' in err
    state_dict, meta = read_checkpoint(str(tmp_path / 'ck' / 'bad' / 'latest_net_G_audio.pth'))
    assert meta['epoch'] == 1 and all(torch.isfinite(v).all() for v in state_dict.values() if v.is_floating_point())
    assert not (tmp_path / 'ck' / 'bad' / '2_net_G_audio.pth').exists()


def test_the_same_seed_in_deterministic_mode_gives_the_same_losses_and_scores(data, tmp_path):
    scores = []
    for run in ('a', 'b'):
        assert train_DF.main(train_args(data, tmp_path, '--deterministic', '--num_threads', '1', name=run)) == 0
        assert test_DF.main(['--dataroot', dfdc(data), '--name', run, '--checkpoints_dir', str(tmp_path / 'ck'),
                             '--results_dir', str(tmp_path / 'res'), '--gpu_ids', '-1', '--deterministic',
                             '--num_threads', '0']) == 0
        scores.append([row['score']
                       for row in skipped(tmp_path / 'res' / run / 'DFDC_all_sound_latest' / 'scores.csv')])
    losses = [train_losses(tmp_path / 'ck' / run / 'metrics.jsonl') for run in ('a', 'b')]
    assert losses[0] == losses[1] and len(losses[0]) == 6
    assert scores[0] == scores[1]


def train_losses(path):
    """{total_iters: losses} of the train records; a step logged twice (before a crash and after resuming) keeps
    the later record."""
    return {r['total_iters']: r['losses'] for r in read_metrics(str(path)) if r['type'] == 'train'}


def test_a_training_killed_with_sigkill_resumes_and_reproduces_the_uninterrupted_losses(data, tmp_path):
    """The killed run is a process of its own; the uninterrupted run and the resumption run here, on one thread as
    the killed process does (OMP_NUM_THREADS=1), so that all three sum in the same order."""
    torch.set_num_threads(1)     # put back by conftest after the test
    # 16 clips: 2 epochs of 4 steps (the second with a decaying rate), the first latest_* in the middle of epoch 1
    args = train_args(data, tmp_path, '--n_epochs', '1', '--n_epochs_decay', '1', '--save_latest_freq', '3',
                      '--max_dataset_size', '16', '--deterministic')
    env = {**os.environ, 'PYTHONUNBUFFERED': '1', 'OMP_NUM_THREADS': '1'}
    folder = tmp_path / 'ck' / 'killed'
    run = subprocess.Popen([sys.executable, 'train_DF.py', *args, '--name', 'killed'], cwd=ROOT, env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def kill_at_the_first_latest():
        deadline = time.time() + 120
        while not (folder / 'latest_train_state.pth').exists() and run.poll() is None and time.time() < deadline:
            time.sleep(0.01)
        run.send_signal(signal.SIGKILL)
    watcher = threading.Thread(target=kill_at_the_first_latest)
    watcher.start()
    try:        # the uninterrupted run, in this process while the other one starts (one core each)
        assert train_DF.main([*args, '--name', 'whole']) == 0
    finally:
        watcher.join()
    assert run.wait() == -signal.SIGKILL                            # killed, not finished
    state_dict, meta = read_checkpoint(str(folder / 'latest_net_G_video.pth'))   # the latest complete files read
    assert state_dict and torch.load(folder / 'latest_train_state.pth', weights_only=True)['total_iters'] >= 3
    assert train_DF.main([*args, '--name', 'killed', '--continue_train']) == 0
    whole, resumed = (train_losses(tmp_path / 'ck' / n / 'metrics.jsonl') for n in ('whole', 'killed'))
    assert len(whole) == 8 and resumed == whole
    final = [read_checkpoint(str(tmp_path / 'ck' / n / 'latest_net_G_video.pth'))[0] for n in ('whole', 'killed')]
    assert all(torch.equal(final[0][k], final[1][k]) for k in final[0])
