"""Hostile and careless input: finished runs never overwritten, one training per folder, silence, truncation and
missing files named for what they are, limits checked before allocations, Ctrl-C and killed parents. Each test is
named in the table of docs/bad_input.md."""
import csv
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import zipfile

import numpy as np
import pytest
import torch

import test_DF
import train_DF
from scripts import detect, prep_dfdc
from tests.conftest import QUICK, TINY, dfdc, vox
from tests.media import face_frame, tone, write_video

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def args(root, ck, *extra, name='run'):
    return ['--dataroot', vox(root), '--name', name, *TINY, '--batch_size', '4', '--negatives', 'sampled',
            '--n_epochs', '1', '--n_epochs_decay', '0', '--num_threads', '0', '--gpu_ids', '-1', '--no_flip',
            '--display_id', '0', '--checkpoints_dir', str(ck), '--max_dataset_size', '8', *QUICK, *extra]


def outcome(fn, argv, capsys):
    """(exit status, stderr) of an entry point that reports through SystemExit('error: ...') or a return value."""
    try:
        status = fn(argv)
    except SystemExit as err:
        status = err.code if isinstance(err.code, int) else 2
        message = err.code if isinstance(err.code, str) else ''
        return status, message + capsys.readouterr().err
    return status, capsys.readouterr().err


@pytest.fixture(scope='module')
def finished(sample_root, tmp_path_factory):
    """A finished tiny training run (its folder), shared by the tests that must not damage it."""
    ck = tmp_path_factory.mktemp('finished')
    assert train_DF.main(args(sample_root, ck)) == 0
    return ck


# ------------------------------------------------------------------------------------------- finished work

def test_a_rerun_is_refused_and_overwrite_moves_the_old_run_aside(sample_root, tmp_path, capsys):
    ck = tmp_path / 'ck'
    assert train_DF.main(args(sample_root, ck)) == 0
    folder = ck / 'run'
    before = {name: (folder / name).read_bytes() for name in ('latest_net_G_audio.pth', 'best_net_G_video.pth',
                                                               'latest_train_state.pth', 'metrics.jsonl')}
    options = (folder / 'train_opt.txt').read_text()
    status, err = outcome(train_DF.main, args(sample_root, ck), capsys)
    assert status == 2 and 'already holds a training run' in err and '--continue_train' in err \
        and '--overwrite' in err
    assert all((folder / name).read_bytes() == data for name, data in before.items())   # nothing touched
    assert (folder / 'train_opt.txt').read_text() == options
    assert not (folder / 'train.lock').exists()
    assert train_DF.main(args(sample_root, ck, '--overwrite', '--seed', '3')) == 0
    moved = [p for p in folder.iterdir() if p.name.startswith('replaced-')]
    assert len(moved) == 1
    assert all((moved[0] / name).read_bytes() == data for name, data in before.items())   # the old run, whole
    assert (moved[0] / 'train_opt.txt').read_text() == options
    assert (folder / 'latest_net_G_audio.pth').read_bytes() != before['latest_net_G_audio.pth']
    status, err = outcome(train_DF.main, args(sample_root, ck, '--overwrite', '--continue_train'), capsys)
    assert status == 2 and 'one of them' in err


def test_a_second_training_of_the_same_name_is_locked_out(sample_root, tmp_path, capsys):
    ck = tmp_path / 'ck'
    (ck / 'run').mkdir(parents=True)
    lock = ck / 'run' / 'train.lock'
    lock.write_text(json.dumps({'pid': os.getpid(), 'host': socket.gethostname(), 'started': 'now',
                                'command': 'train_DF.py ...'}))     # a live owner: this very process
    status, err = outcome(train_DF.main, args(sample_root, ck), capsys)
    assert status == 2 and f'pid {os.getpid()}' in err and str(lock) in err
    lock.write_text(json.dumps({'pid': 12345, 'host': 'another-machine', 'started': 'then'}))
    status, err = outcome(train_DF.main, args(sample_root, ck), capsys)
    assert status == 2 and 'another-machine' in err    # another host: trusted until someone deletes it
    dead = subprocess.Popen([sys.executable, '-c', 'pass'])
    dead.wait()
    lock.write_text(json.dumps({'pid': dead.pid, 'host': socket.gethostname(), 'started': 'then'}))
    assert train_DF.main(args(sample_root, ck)) == 0    # stale: its owner is gone, so it is taken over
    assert not lock.exists()                             # and released at the end


@pytest.mark.parametrize('name', ['..', '../elsewhere', '/tmp/abs', '', 'a/b', ' padded'])
def test_the_name_must_be_a_plain_folder_name(sample_root, tmp_path, capsys, name):
    status, err = outcome(train_DF.main, args(sample_root, tmp_path / 'ck', name=name), capsys)
    assert status == 2 and 'plain folder name' in err
    assert not (tmp_path / 'elsewhere').exists() and not os.path.exists('/tmp/abs')


@pytest.mark.parametrize('extra,expected', [
    (['--lr', '-0.1'], '--lr must be a number of 0 or more'),
    (['--heads', '3'], 'must be divisible by heads'),
    (['--crop_size', '16', '--load_size', '16'], 'too small for the FaceEncoder'),
    (['--prefetch_factor', '0', '--num_threads', '2'], '--prefetch_factor must be at least 1'),
    (['--suffix', '{x}'], '--suffix'),
    (['--emb_dim', '-4'], 'emb_dim must be a positive number'),
])
def test_option_mistakes_end_in_one_line(sample_root, tmp_path, capsys, extra, expected):
    status, err = outcome(train_DF.main, args(sample_root, tmp_path / 'ck', *extra), capsys)
    assert status == 2 and expected in err and 'Traceback' not in err


def test_temporaries_of_a_killed_write_are_removed_on_the_next_run(sample_root, tmp_path):
    ck = tmp_path / 'ck'
    assert train_DF.main(args(sample_root, ck)) == 0
    leftover = ck / 'run' / '.latest_net_G_audio.pth.k3j2l1.tmp'
    leftover.write_bytes(b'half a checkpoint')
    assert train_DF.main(args(sample_root, ck, '--continue_train', '--n_epochs', '2')) == 0
    assert not leftover.exists()


# ------------------------------------------------------------------------------------------- raw videos

def face_video(path, audio, seconds=4.0):
    write_video(path, face_frame(), seconds=seconds, fps=10, audio=audio)
    return str(path)


@pytest.fixture(scope='module')
def bad_videos(tmp_path_factory):
    """A DFDC part: a good video, digital silence, near silence (hiss at -70 dB), a video truncated to a third, one
    listed but absent."""
    part = tmp_path_factory.mktemp('dfdc_part')
    face_video(part / 'good.mkv', tone(6.0))
    face_video(part / 'zeros.mkv', np.zeros(6 * 16000, dtype=np.float32))
    hiss = (np.random.default_rng(0).standard_normal(6 * 16000) * 10 ** (-70 / 20)).astype(np.float32)
    face_video(part / 'hiss.mkv', hiss)
    full = face_video(part / 'cut.mkv', tone(20.0), seconds=20.0)
    data = open(full, 'rb').read()
    with open(full, 'wb') as handle:
        handle.write(data[:len(data) // 3])
    labels = {'good.mkv': 'REAL', 'zeros.mkv': 'REAL', 'hiss.mkv': 'FAKE', 'cut.mkv': 'FAKE', 'gone.mkv': 'FAKE'}
    (part / 'metadata.json').write_text(json.dumps({k: {'label': v} for k, v in labels.items()}))
    return part


def test_silence_truncation_and_missing_files_are_named_in_prep(bad_videos, tmp_path):
    out = tmp_path / 'out'
    assert prep_dfdc.main(['--src', str(bad_videos), '--out', str(out), '--windows', '3']) == 0
    rows = {os.path.basename(r['input']).split('.')[0]: r for r in csv.DictReader(open(out / 'skipped.csv'))}
    assert rows['zeros']['reason'] == 'silent' and rows['hiss']['reason'] == 'silent'   # no --trim_leading_silence
    assert rows['gone']['reason'] == 'missing' and rows['gone']['status'] == 'failed'
    assert rows['cut']['reason'] in ('truncated', 'unreadable') and ' s ' in rows['cut']['detail'] + ' '
    assert 'good' not in rows and (out / 'real' / 'good').is_dir()


def test_detect_refuses_silence_and_truncation_with_status_5(finished, bad_videos, capsys):
    base = ['--name', 'run', '--checkpoints_dir', str(finished), '--gpu_ids', '-1', '--json']
    for name, reason in (('zeros', 'silent'), ('hiss', 'silent'), ('cut', None)):
        status = detect.main([str(bad_videos / f'{name}.mkv'), *base])
        out = capsys.readouterr()
        result = json.loads(out.out.strip().splitlines()[-1])
        assert status == detect.EXIT_UNUSABLE, (name, result)
        assert result['error'] in ((reason,) if reason else ('truncated', 'unreadable')), (name, result)
        assert out.err.count(str(bad_videos / f'{name}.mkv')) <= 1     # the path once, not twice


def test_prep_refuses_to_resume_with_other_options(bad_videos, tmp_path, capsys):
    out = tmp_path / 'out'
    assert prep_dfdc.main(['--src', str(bad_videos), '--out', str(out)]) == 0
    capsys.readouterr()
    assert prep_dfdc.main(['--src', str(bad_videos), '--out', str(out), '--windows', '3']) == 2
    err = capsys.readouterr().err
    assert '--windows 1 then, 3 now' in err and not (out / 'real' / 'good').is_dir()
    assert prep_dfdc.main(['--src', str(bad_videos), '--out', str(out)]) == 0   # the same options resume


def test_a_folder_holding_both_forms_of_a_video_is_a_clear_error(sample_root, tmp_path, capsys, finished):
    root = tmp_path / 'dfdc'
    shutil.copytree(dfdc(sample_root), root)
    face = sorted((root / 'real').glob('*.jpg'))[0]
    video = face.stem
    (root / 'real' / video).mkdir()
    shutil.copy(face, root / 'real' / video / '0.jpg')
    (root / 'audio_feat' / video).mkdir()
    shutil.copy(root / 'audio_feat' / f'{video}.npy', root / 'audio_feat' / video / '0.npy')
    status, err = outcome(test_DF.main, ['--dataroot', str(root), '--name', 'run', '--checkpoints_dir',
                                         str(finished), '--results_dir', str(tmp_path / 'r'), '--gpu_ids', '-1',
                                         '--num_threads', '0'], capsys)
    assert status == 2 and f'video {video} is also' in err


# ------------------------------------------------------------------------------------------- interrupts and kills

def wait_for(predicate, seconds):
    end = time.time() + seconds
    while time.time() < end:
        if predicate():
            return True
        time.sleep(0.2)
    return False


def ctrl_c_at_its_default():
    """``preexec_fn`` of a process that the test will interrupt: Ctrl-C (SIGINT) back at its default, which Python
    turns into KeyboardInterrupt. A shell without job control starts its background jobs with SIGINT ignored, and an
    ignored signal stays ignored in every process started below (pytest run with ``&`` or ``nohup``): the command
    under test would never see the test's Ctrl-C."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_ctrl_c_and_sigterm_end_training_with_one_line(sample_root, tmp_path):
    """Ctrl-C (exit 130) and SIGTERM, what SLURM and Kubernetes send (exit 143), in the middle of a training: one
    line, no traceback, the lock released, the checkpoints readable, and --continue_train resumes. The two trainings
    run at once, on one thread each (their start-up, mostly imports, overlaps on two cores)."""
    runs = {}
    for name, preexec in (('int', ctrl_c_at_its_default), ('term', None)):
        runs[name] = subprocess.Popen(
            [sys.executable, 'train_DF.py', *args(sample_root, tmp_path / name, '--n_epochs', '50', '--num_threads',
                                                  '1')],
            cwd=ROOT, env={**os.environ, 'OMP_NUM_THREADS': '1'}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            text=True, preexec_fn=preexec)
    try:
        for name, sig in (('int', signal.SIGINT), ('term', signal.SIGTERM)):
            assert wait_for(lambda: (tmp_path / name / 'run' / 'latest_train_state.pth').exists(), 180), \
                f'{name}: no epoch finished'
            runs[name].send_signal(sig)                  # in the middle of the training: 50 epochs to go
        errors = {name: run.communicate(timeout=60)[1] for name, run in runs.items()}
    finally:
        for run in runs.values():
            run.kill()
            run.wait()
    for name, status, line in (('int', 130, 'interrupted'), ('term', 143, 'terminated (SIGTERM)')):
        assert runs[name].returncode == status, errors[name][-2000:]
        assert 'Traceback' not in errors[name] and errors[name].strip().splitlines()[-1].startswith(line)
        assert not (tmp_path / name / 'run' / 'train.lock').exists()
    assert train_DF.main(args(sample_root, tmp_path / 'term', '--continue_train', '--n_epochs', '2')) == 0


def test_ctrl_c_ends_prep_with_its_lists_written_and_a_killed_parent_leaves_no_workers(tmp_path):
    src = tmp_path / 'vox'
    # 240 videos (4 made, the rest hard links to them): two workers prep 24 of them in about a second once started,
    # so with 24 the run could end between its first file and the Ctrl-C when the test's process waits for a core
    for i in range(240):
        folder = src / f'id{i:05d}' / 'v'
        folder.mkdir(parents=True)
        if i < 4:
            face_video(folder / '00001.mp4', tone(4.0, seed=i), seconds=4.0)
        else:
            os.link(src / f'id{i % 4:05d}' / 'v' / '00001.mp4', folder / '00001.mp4')
    command = [sys.executable, '-m', 'scripts.prep_voxceleb2', '--src', str(src), '--detector', 'none',
               '--workers', '2']
    proc = subprocess.Popen([*command, '--out', str(tmp_path / 'a')], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, preexec_fn=ctrl_c_at_its_default)
    assert wait_for(lambda: any((tmp_path / 'a' / 'voice').glob('*.npy')), 120), 'prep never started'
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and 'Traceback' not in err, (proc.returncode, err[-2000:])
    assert 'interrupted' in err and (tmp_path / 'a' / 'skipped.csv').is_file(), err[-2000:]
    proc = subprocess.Popen([*command, '--out', str(tmp_path / 'b')], cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    assert wait_for(lambda: len(children(proc.pid)) >= 2, 120), 'no workers started'
    workers = children(proc.pid)
    proc.kill()
    proc.wait()
    assert wait_for(lambda: not any(alive(pid) for pid in workers), 10), 'workers outlived their parent'
    err = proc.stderr.read()
    assert 'Traceback' not in err, err[-2000:]


def children(pid):
    """Process ids whose parent is ``pid``."""
    out = []
    for entry in os.listdir('/proc'):
        if entry.isdigit():
            try:
                with open(f'/proc/{entry}/stat') as handle:
                    if int(handle.read().rsplit(')', 1)[1].split()[1]) == pid:
                        out.append(int(entry))
            except (OSError, IndexError, ValueError):
                pass
    return out


def alive(pid):
    try:
        with open(f'/proc/{pid}/stat') as handle:
            return handle.read().rsplit(')', 1)[1].split()[0] != 'Z'
    except OSError:
        return False


# ------------------------------------------------------------------------------------------- checkpoints

def copy_run(finished, tmp_path):
    shutil.copytree(finished / 'run', tmp_path / 'ck' / 'run')
    return tmp_path / 'ck'


def test_checkpoints_with_nan_weights_forged_facts_or_forged_archives_are_refused(finished, sample_root,
                                                                                  tmp_path, capsys):
    ck = copy_run(finished, tmp_path)
    path = ck / 'run' / 'latest_net_G_video.pth'
    test_args = ['--dataroot', dfdc(sample_root), '--name', 'run', '--checkpoints_dir', str(ck), '--results_dir',
                 str(tmp_path / 'r'), '--gpu_ids', '-1', '--num_threads', '0', '--epoch', 'latest']
    good = torch.load(path, weights_only=True)

    def refused(obj, expected):
        torch.save(obj, path)
        status, err = outcome(test_DF.main, test_args, capsys)
        assert status == 2 and expected in err and 'Traceback' not in err
        assert not (tmp_path / 'r' / 'run').exists() or not any((tmp_path / 'r' / 'run').rglob('scores.csv'))

    poisoned = {**good, 'state_dict': dict(good['state_dict'])}
    key = next(iter(poisoned['state_dict']))
    poisoned['state_dict'][key] = poisoned['state_dict'][key].clone().fill_(float('nan'))
    refused(poisoned, 'NaN or infinite')
    refused({**good, 'val': 5}, "stored 'val'")
    refused({**good, 'val': {'eer_threshold': 'high'}}, 'threshold')
    huge = {**good['config'], 'face': {**good['config']['face'], 'dim': 8192, 'mlp_dim': 2 ** 16}}
    audio = ck / 'run' / 'latest_net_G_audio.pth'
    audio_good = torch.load(audio, weights_only=True)
    torch.save({**audio_good, 'config': huge}, audio)    # both files claim it, so they agree with each other
    refused({**good, 'config': huge}, 'fingerprint')     # the config no longer matches what was written with it
    # a file without a fingerprint (written before they existed) claiming it: compared on the meta device
    old = {key: value for key, value in audio_good.items() if key != 'fingerprint'}
    torch.save({**old, 'config': huge}, audio)
    refused({**{key: value for key, value in good.items() if key != 'fingerprint'}, 'config': huge}, 'does not fit')
    torch.save(audio_good, audio)
    torch.save(good, path)
    buffer = io.BytesIO()   # the same records, deflated: torch.save never writes that
    with zipfile.ZipFile(path) as source, zipfile.ZipFile(buffer, 'w', zipfile.ZIP_DEFLATED) as forged:
        for member in source.infolist():
            forged.writestr(member.filename, source.read(member.filename))
    path.write_bytes(buffer.getvalue())
    status, err = outcome(test_DF.main, test_args, capsys)
    assert status == 2 and 'not written by torch.save' in err


# ------------------------------------------------------------------------------------------- files in loader workers

def forged_npy(kind):
    good = io.BytesIO()
    np.save(good, np.zeros((512, 301), dtype=np.float32))
    data = good.getvalue()
    if kind == 'empty':
        return b''
    if kind == 'npz':
        packed = io.BytesIO()
        np.savez(packed, mel=np.zeros((512, 301), dtype=np.float32))
        return packed.getvalue()
    if kind == 'header':
        return data[:10] + b'{not a dict' + data[21:]
    return data.replace(b'(512, 301)', b'(512, 1125899906842624)')   # 2 PiB claimed, 600 kB held


BROKEN_MELS = {'empty': 'the file is empty', 'npz': 'an .npz archive under an .npy name',
               'header': 'the .npy header is corrupt', 'huge': 'its header claims'}


def test_broken_mels_in_loader_workers_are_named_or_skipped(sample_root, tmp_path, capsys):
    """Four kinds of broken mel, one in each of four training identities: the reader refuses each with its own
    reason and its path; in a loader worker in the middle of training the first one met ends the run with one
    error line naming it (the worker's path is the same whatever the reader refused), and --skip_bad trains on
    and lists all four."""
    from data import DatasetError, audio
    root = tmp_path / 'data'
    shutil.copytree(vox(sample_root), root)
    victims = {}
    for kind, identity in zip(BROKEN_MELS, ('id00004', 'id00005', 'id00006', 'id00007')):
        victims[kind] = sorted((root / 'voice').glob(f'{identity}_*.npy'))[0]
        victims[kind].write_bytes(forged_npy(kind))
    for kind, victim in victims.items():
        with pytest.raises(DatasetError) as refused:
            audio.load_voice(str(victim))
        assert str(refused.value).startswith(f'{victim}: ') and BROKEN_MELS[kind] in str(refused.value), kind
    argv = args(sample_root, tmp_path / 'ck', '--num_threads', '1')
    argv[argv.index('--dataroot') + 1] = str(root)
    argv[argv.index('--max_dataset_size') + 1] = '1000'
    status, err = outcome(train_DF.main, argv, capsys)
    assert status == 2 and 'Traceback' not in err
    assert [kind for kind, victim in victims.items() if str(victim) in err and BROKEN_MELS[kind] in err]
    assert train_DF.main([*argv, '--skip_bad', '--name', 'skip']) == 0
    listed = list(csv.DictReader(open(tmp_path / 'ck' / 'skip' / 'skipped_samples.csv')))
    assert {str(victim) for victim in victims.values()} <= {row['path'] for row in listed}


def test_an_image_claiming_huge_dimensions_is_refused_before_decoding(tmp_path):
    import struct
    import types
    from PIL import Image
    from data import DatasetError, faces
    buffer = io.BytesIO()
    Image.new('RGB', (64, 64)).save(buffer, 'JPEG')
    data = bytearray(buffer.getvalue())
    at = data.find(b'\xff\xc0')
    data[at + 5:at + 9] = struct.pack('>HH', 15000, 15000)
    path = tmp_path / 'bomb.jpg'
    path.write_bytes(bytes(data))
    opt = types.SimpleNamespace(load_size=64, crop_size=64, preprocess='resize_and_crop', no_flip=True)
    for backend in faces.BACKENDS:
        with pytest.raises(DatasetError, match='refused before decoding'):
            faces.load_face(str(path), opt, backend=backend)


def test_file_names_that_are_not_utf8_reach_the_results(finished, sample_root, tmp_path):
    root = tmp_path / 'dfdc'
    shutil.copytree(dfdc(sample_root), root)
    face = sorted((root / 'fake').glob('*.jpg'))[0]
    odd = os.fsdecode(face.stem.encode() + b'_\xff\xfe')   # bytes no UTF-8 decoder accepts
    os.rename(face, root / 'fake' / f'{odd}.jpg')
    os.rename(root / 'audio_feat' / f'{face.stem}.npy', root / 'audio_feat' / f'{odd}.npy')
    assert test_DF.main(['--dataroot', str(root), '--name', 'run', '--checkpoints_dir', str(finished),
                         '--results_dir', str(tmp_path / 'r'), '--gpu_ids', '-1', '--num_threads', '0',
                         '--results_tag', 'odd']) == 0
    raw = (tmp_path / 'r' / 'run' / 'odd' / 'scores.csv').read_bytes()
    assert face.stem.encode() + b'_\xff\xfe' in raw   # the name as it is on disk
    json.loads((tmp_path / 'r' / 'run' / 'odd' / 'summary.json').read_text())


def test_a_set_with_one_class_gives_strict_json_and_says_why(finished, sample_root, tmp_path, capsys):
    reals = sorted(p.stem for p in (sample_root / 'DFDC' / 'real').glob('*.jpg'))
    split = tmp_path / 'split.json'
    split.write_text(json.dumps({'train': [], 'val': [], 'test': reals}))
    argv = ['--dataroot', dfdc(sample_root), '--name', 'run', '--checkpoints_dir', str(finished),
            '--results_dir', str(tmp_path / 'r'), '--gpu_ids', '-1', '--num_threads', '0', '--split_file',
            str(split)]
    status, err = outcome(test_DF.main, [*argv, '--results_tag', 'refused'], capsys)
    assert status == test_DF.EXIT_ONE_CLASS and 'no fake' in err and '--allow_one_class' in err
    assert test_DF.main([*argv, '--results_tag', 'reals', '--allow_one_class']) == 0
    folder = tmp_path / 'r' / 'run' / 'reals'
    summary = json.loads((folder / 'summary.json').read_text(),
                         parse_constant=lambda name: pytest.fail(f'{name} in summary.json'))
    assert summary['auc'] is None and 'no fake' in summary['not_measurable']
    page = (folder / 'index.html').read_text()
    assert 'not measurable (only reals' in page and 'nan' not in page.lower()


@pytest.fixture
def tiny_disk(small_disk):
    """A 64 kB disk."""
    return small_disk('64k')


def test_a_disk_that_fills_up_while_results_are_written_keeps_the_scores(finished, sample_root, tiny_disk,
                                                                          capsys):
    status, err = outcome(test_DF.main, ['--dataroot', dfdc(sample_root), '--name', 'run', '--checkpoints_dir',
                                         str(finished), '--results_dir', str(tiny_disk), '--gpu_ids', '-1',
                                         '--num_threads', '0'], capsys)
    assert status == 2 and 'could not write the results' in err and 'No space left' in err
    assert 'Traceback' not in err and 'scores.csv' in err
    rows = list(csv.DictReader(open(next(tiny_disk.rglob('scores.csv')))))
    assert len(rows) == 8
    assert not list(tiny_disk.rglob('*.tmp')) and not list(tiny_disk.rglob('.*.tmp'))
