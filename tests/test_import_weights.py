"""scripts/import_weights.py: the journal's and the 2022 release's weight files become run folders that test_DF.py,
detect.py, fine-tuning and resuming use; their scores are the transcription's (tests/journal_reference.py) on inputs
worked out here independently."""
import csv
import json
import os
import pickle

import numpy as np
import pytest
import soundfile
import torch
from PIL import Image

import test_DF
import train_DF
from models.checkpoint import read as read_checkpoint
from scripts import detect, import_weights
from tests import journal_reference
from tests.conftest import QUICK, dfdc, encoders
from tests.media import face_frame, tone, write_video
from tests.test_inputs import reference_power_mel

SIZES = dict(patch_size=32, width=64, layers=2, heads=4, output_dim=32)
CLIP_MEAN = np.array([0.48145466, 0.4578275, 0.40821073])
CLIP_STD = np.array([0.26862954, 0.26130258, 0.27577711])


def towers(seed=0):
    """The transcription's towers at a tiny width: faces of 64 px (2 x 2 patches), the published 128 x 256 voice."""
    torch.manual_seed(seed)
    face = journal_reference.VisualTransformer(64, **SIZES)
    voice = journal_reference.AuditoryTransformer([128, 256], **SIZES)
    with torch.no_grad():
        for net in (face, voice):
            for name, p in net.named_parameters():
                p.add_(torch.randn_like(p) * (0.2 if 'ln' in name else 0.02))
    return voice.eval(), face.eval()


@pytest.fixture(scope='module')
def journal_file(tmp_path_factory):
    path = tmp_path_factory.mktemp('journal') / 'last_model.pt'
    voice, face = towers()
    journal_reference.save_journal_checkpoint(path, voice, face, epoch=18)
    return path, voice, face


def face_input(path, load=73, crop=64):
    """The journal's test transform, written out: PIL RGB, bilinear resize to ``load``, centre crop, x / 255, CLIP
    mean and standard deviation."""
    image = Image.open(path).convert('RGB').resize((load, load), Image.BILINEAR)
    top = int(round((load - crop) / 2.0))
    array = np.asarray(image, dtype=np.float32)[top:top + crop, top:top + crop] / 255.0
    return torch.from_numpy(((array - CLIP_MEAN) / CLIP_STD).astype(np.float32).transpose(2, 0, 1))


def voice_input(samples):
    """The journal's voice input: the first 40,960 samples (repeated when short), its power mel (numpy, float64),
    its first 256 frames."""
    samples = np.asarray(samples, dtype=np.float32)
    if len(samples) < 40960:
        samples = np.tile(samples, 40960 // len(samples) + 1)
    return torch.from_numpy(reference_power_mel(samples[:40960])[:, :256].astype(np.float32))[None]


def transcription_score(voice, face, voice_x, face_x):
    with torch.no_grad():
        return journal_reference.cosine_score(voice(voice_x[None]), face(face_x[None])).item()


def imported(journal_file, tmp_path, name='imp', extra=()):
    ck = tmp_path / 'checkpoints'
    assert import_weights.main(['--format', 'journal', str(journal_file[0]), '--name', name, '--checkpoints_dir',
                                str(ck), '--heads', '4', *extra]) == 0
    return ck


def test_test_DF_gives_the_transcriptions_cosine_scores(journal_file, sample_root, tmp_path):
    _, voice, face = journal_file
    ck = imported(journal_file, tmp_path)
    record = json.loads((ck / 'imp' / 'import.json').read_text())
    assert record['optimizer_state'] == 'mapped' and record['resume_epoch'] == 20
    assert record['config']['voice'] == {'kind': 'voice_journal', 'patch': 32, 'dim': 64, 'depth': 2, 'heads': 4,
                                         'mlp_dim': 256, 'emb_dim': 32, 'n_mels': 128, 'n_frames': 256}
    _, meta = read_checkpoint(str(ck / 'imp' / 'best_net_G_video.pth'))
    assert meta['config']['load_size'] == 73 and meta['config']['score'] == 'cosine'
    results = tmp_path / 'results'
    assert test_DF.main(['--dataroot', dfdc(sample_root), '--name', 'imp', '--checkpoints_dir', str(ck),
                         '--results_dir', str(results), '--gpu_ids', '-1', '--num_threads', '0']) == 0
    rows = list(csv.DictReader(open(results / 'imp' / 'DFDC_all_sound_latest' / 'scores.csv')))
    assert len(rows) == len(os.listdir(os.path.join(dfdc(sample_root), 'real'))) * 2
    worst = 0.0
    for row in rows:
        samples, rate = soundfile.read(row['voice_path'], dtype='float32')
        assert rate == 16000 and row['voice_path'].endswith('.wav')
        expected = transcription_score(voice, face, voice_input(samples), face_input(row['face_path']))
        worst = max(worst, abs(float(row['score']) - expected))
        assert float(row['distance']) == pytest.approx(1 - float(row['score']), abs=2e-6)
    assert worst < 1e-5
    summary = json.loads((results / 'imp' / 'DFDC_all_sound_latest' / 'summary.json').read_text())
    assert summary['threshold'] == 0.0 and 'not chosen on validation' in summary['threshold_source']
    assert summary['score'] == 'cosine' and summary['encoder_compat'] == 'journal'


def test_detect_gives_the_transcriptions_cosine_score(journal_file, tmp_path, capsys):
    from prep.video import clip_windows
    _, voice, face = journal_file
    ck = imported(journal_file, tmp_path)
    video = tmp_path / 'talk.mkv'
    write_video(video, face_frame(), seconds=5.0, audio=tone(5.0, f0=150))
    assert detect.main([str(video), '--name', 'imp', '--checkpoints_dir', str(ck), '--gpu_ids', '-1', '--windows',
                        '2', '--json']) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    windows = clip_windows(str(video), windows=2, config={'face_size': 224})
    expected = []
    for w in windows:
        path = tmp_path / 'face.png'
        w['face'].save(path)           # lossless, so the test reads the very pixels detect.py had
        expected.append(transcription_score(voice, face, voice_input(w['wav']), face_input(path)))
    assert [w['score'] for w in result['windows']] == pytest.approx(expected, abs=1e-5)
    assert result['score'] == pytest.approx(np.mean(expected), abs=1e-5)
    assert result['score_function'] == 'cosine' and result['distance'] == pytest.approx(1 - result['score'])
    assert result['verdict'] == ('real' if result['score'] >= 0 else 'fake') and result['threshold'] == 0.0


def test_without_prefix_or_optimiser_and_refusing_a_second_import(tmp_path):
    voice, face = towers(1)
    path = tmp_path / 'model_best.pt'
    journal_reference.save_journal_checkpoint(path, voice, face, module_prefix=False, optimizer=False)
    ck = tmp_path / 'checkpoints'
    args = ['--format', 'journal', str(path), '--name', 'plain', '--checkpoints_dir', str(ck), '--heads', '4']
    assert import_weights.main(args) == 0
    record = json.loads((ck / 'plain' / 'import.json').read_text())
    assert record['optimizer_state'] == 'none' and record['resume_epoch'] == 5
    state, _ = read_checkpoint(str(ck / 'plain' / 'latest_net_G_audio.pth'))
    assert all(torch.equal(state[k], v) for k, v in voice.state_dict().items())
    assert import_weights.main(args) == 2                        # a run is there already
    assert import_weights.main([*args, '--overwrite']) == 0


def one_error_line(capsys):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith('error: ')
    return err[0]


def test_wrong_files_get_one_line_each(tmp_path, capsys, journal_file):
    ck = ['--checkpoints_dir', str(tmp_path / 'ck'), '--name', 'x', '--heads', '4']
    voice, face = encoders(dict(encoder_compat='released', dim=64, depth=1, heads=4, mlp_dim=64, emb_dim=32,
                                width_mult=0.25, crop_size=64, n_mels=512, n_frames=301))
    released = tmp_path / 'latest_net_G_audio.pth'
    torch.save(voice.state_dict(), released)
    assert import_weights.main(['--format', 'journal', str(released), *ck]) == 2
    line = one_error_line(capsys)
    assert 'not a journal VFD checkpoint' in line and '--format released' in line
    # another model's weights under the journal's keys
    other = tmp_path / 'other.pt'
    resnet = {'conv1.weight': torch.zeros(8, 3, 7, 7), 'fc.weight': torch.zeros(10, 8)}
    torch.save({'epoch': 1, 'voice_model_state_dict': resnet, 'face_model_state_dict': resnet}, other)
    assert import_weights.main(['--format', 'journal', str(other), *ck]) == 2
    assert 'other.pt' in one_error_line(capsys)
    # a truncated file, a pickle that is no checkpoint, a folder, a missing file
    data = journal_file[0].read_bytes()
    cut = tmp_path / 'cut.pt'
    cut.write_bytes(data[:len(data) // 2])
    assert import_weights.main(['--format', 'journal', str(cut), *ck]) == 2
    assert 'cut.pt' in one_error_line(capsys)
    pickled = tmp_path / 'obj.pt'
    with open(pickled, 'wb') as handle:
        pickle.dump({'voice_model_state_dict': np.zeros(3), 'run': os.system}, handle)   # would run code
    assert import_weights.main(['--format', 'journal', str(pickled), *ck]) == 2
    assert 'obj.pt' in one_error_line(capsys)
    assert import_weights.main(['--format', 'journal', str(tmp_path), *ck]) == 2
    assert 'folder' in one_error_line(capsys)
    assert import_weights.main(['--format', 'journal', str(tmp_path / 'nope.pt'), *ck]) == 2
    assert 'not found' in one_error_line(capsys)
    assert not os.path.exists(tmp_path / 'ck' / 'x' / 'latest_net_G_audio.pth')


def test_the_not_a_journal_file_message(tmp_path, capsys):
    path = tmp_path / 'latest_net_G_video.pth'
    torch.save({'pos_embedding': torch.zeros(32, 1, 8)}, path)
    assert import_weights.main(['--format', 'journal', str(path), '--name', 'x', '--checkpoints_dir',
                                str(tmp_path)]) == 2
    line = one_error_line(capsys)
    assert 'not a journal VFD checkpoint' in line and '--format released' in line


def test_released_files_import_and_score_as_the_plain_files(sample_root, tmp_path):
    """The 2022 release's two plain state dicts: imported, they give exactly the scores the plain files give."""
    arch = dict(encoder_compat='released', dim=64, depth=2, heads=4, mlp_dim=96, emb_dim=32, width_mult=0.25,
                crop_size=64, n_mels=512, n_frames=301)
    voice, face = encoders(arch)
    plain = tmp_path / 'checkpoints' / 'plain'
    plain.mkdir(parents=True)
    torch.save(voice.state_dict(), plain / 'latest_net_G_audio.pth')
    torch.save(face.state_dict(), plain / 'latest_net_G_video.pth')
    ck = tmp_path / 'checkpoints'
    assert import_weights.main(['--format', 'released', str(plain / 'latest_net_G_video.pth'),
                                str(plain / 'latest_net_G_audio.pth'), '--name', 'imp', '--checkpoints_dir',
                                str(ck), '--heads', '4']) == 0
    common = ['--dataroot', dfdc(sample_root), '--checkpoints_dir', str(ck), '--results_dir', str(tmp_path / 'r'),
              '--gpu_ids', '-1', '--num_threads', '0']
    sizes = ['--dim', '64', '--depth', '2', '--heads', '4', '--mlp_dim', '96', '--emb_dim', '32', '--width_mult',
             '0.25', '--crop_size', '64', '--load_size', '64']
    assert test_DF.main([*common, '--name', 'plain', *sizes]) == 0
    assert test_DF.main([*common, '--name', 'imp']) == 0
    read = [list(csv.DictReader(open(tmp_path / 'r' / n / 'DFDC_all_sound_latest' / 'scores.csv')))
            for n in ('plain', 'imp')]
    assert [r['score'] for r in read[0]] == [r['score'] for r in read[1]]
    _, meta = read_checkpoint(str(ck / 'imp' / 'latest_net_G_audio.pth'))
    assert meta['config']['compat'] == 'released' and 'decision_threshold' not in meta


def write_split(root, path):
    """Two reals and two fakes for validation, the rest for training (a split for the fine-tuning mechanics, not for
    measuring: identities are not kept apart)."""
    videos = {folder: sorted(os.path.splitext(n)[0] for n in os.listdir(os.path.join(root, folder)))
              for folder in ('real', 'fake')}
    split = {'train': videos['real'][2:] + videos['fake'][2:], 'val': videos['real'][:2] + videos['fake'][:2],
             'test': videos['real'][:2] + videos['fake'][:2]}
    path.write_text(json.dumps(split))
    return path


def test_fine_tuning_and_resuming_from_an_import(journal_file, sample_root, tmp_path):
    ck = imported(journal_file, tmp_path)
    split = write_split(dfdc(sample_root), tmp_path / 'split.json')
    common = ['--dataroot', dfdc(sample_root), '--dataset_mode', 'DFDC', '--split_file', str(split),
              '--checkpoints_dir', str(ck), '--gpu_ids', '-1', '--num_threads', '0', '--display_id', '0',
              '--recipe', 'journal_finetune', '--n_negatives', '2', '--batch_size', '2', '--print_freq', '1', *QUICK]
    # fine-tune a new run from the imported weights: the fake-pair loss, the journal's sizes from the checkpoint
    assert train_DF.main([*common, '--name', 'ft', '--pretrained_name', 'imp', '--n_epochs', '1']) == 0
    log = (ck / 'ft' / 'loss_log.txt').read_text()
    assert 'fake_pairs:' in log and 'temperature: 0.1000' in log
    _, meta = read_checkpoint(str(ck / 'ft' / 'latest_net_G_audio.pth'))
    assert meta['config']['loss'] == 'fake_pairs' and meta['config']['voice']['dim'] == 64
    # resume the imported run itself: its epoch (18, counted from 0 by the journal) is done, so epoch 20 runs
    assert train_DF.main([*common, '--name', 'imp', '--continue_train']) == 0
    records = [json.loads(line) for line in open(ck / 'imp' / 'metrics.jsonl')]
    assert {r['epoch'] for r in records if r['type'] == 'train'} == {20}
