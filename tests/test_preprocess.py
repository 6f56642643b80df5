"""Raw videos -> dataset layouts (scripts/prep_*.py, prep/video.py) on small videos made with PyAV."""
import csv
import json
import os

import numpy as np
import pytest
import soundfile
from PIL import Image

from prep import video as preprocess
from data.audio import mel_from_file
from data.inputs import journal_clip_cut
from scripts import prep_dfdc, prep_fakeavceleb, prep_timit, prep_voxceleb2
from tests.media import blank_frame, face_frame, tone, write_audio, write_video


def skipped_rows(out):
    with open(os.path.join(out, 'skipped.csv'), newline='') as handle:
        return {'/'.join(row['input'].split(os.sep)[-3:]): row for row in csv.DictReader(handle)}


def wav_of(path, samples, sr=16000):
    """The same 16-bit samples that a .mkv test video carries, as a WAV file (for the released mel recipe)."""
    soundfile.write(str(path), (np.clip(samples, -1, 1) * 32767).astype(np.int16), sr, subtype='PCM_16')
    return str(path)


@pytest.fixture(scope='module')
def vox_src(tmp_path_factory):
    """A VoxCeleb2 mp4 tree: a good clip, one without audio, one without a face, a corrupt one; and an aac tree."""
    root = tmp_path_factory.mktemp('vox')
    src, aac = root / 'mp4', root / 'aac'
    good = src / 'id00001' / 'ab_c-d'
    good.mkdir(parents=True)
    write_video(good / '00001.mp4', face_frame(), audio=tone(4.0))
    write_video(good / '00002.mp4', face_frame(), audio=None)
    other = src / 'id00002' / 'x-y_z'
    other.mkdir(parents=True)
    write_video(other / '00001.mp4', blank_frame(), audio=tone(4.0, f0=120))
    (other / '00003.mp4').write_bytes(b'\x00\x00\x00\x18ftypmp42' + os.urandom(3000))
    (aac / 'id00001' / 'ab_c-d').mkdir(parents=True)
    write_audio(aac / 'id00001' / 'ab_c-d' / '00002.m4a', tone(4.0, f0=150))
    return root


def test_voxceleb2_layout_skips_bad_clips_and_resumes(vox_src, tmp_path, capsys):
    out = tmp_path / 'Vox'
    assert prep_voxceleb2.main(['--src', str(vox_src / 'mp4'), '--out', str(out), '--workers', '1']) == 0
    face = out / 'face' / 'id00001' / 'ab_c-d' / '00001.jpg'
    voice = out / 'voice' / 'id00001_ab_c-d_00001.npy'
    with Image.open(face) as image:
        assert image.size == (224, 224) and image.mode == 'RGB'
    mel = np.load(voice)
    assert mel.shape == (512, 301) and mel.dtype == np.float32 and mel.max() == 0 and mel.min() >= -80
    assert sorted(p.name for p in (out / 'voice').iterdir()) == ['id00001_ab_c-d_00001.npy',
                                                                 'id00001_ab_c-d_00001.wav']
    # beside the mel, what journal models read: the journal's cut (seconds 1 to 4) of the audio at 16 kHz
    y, sr, _ = preprocess.decode_audio(str(vox_src / 'mp4' / 'id00001' / 'ab_c-d' / '00001.mp4'))
    wav, rate = soundfile.read(out / 'voice' / 'id00001_ab_c-d_00001.wav', dtype='float32')
    expected = journal_clip_cut(preprocess.to_16k(y, sr))
    assert rate == 16000 and wav.shape == expected.shape and np.abs(wav - expected).max() <= 1 / 32768 + 1e-6
    rows = skipped_rows(out)
    assert {name: (r['status'], r['reason']) for name, r in rows.items()} == {
        'id00001/ab_c-d/00002.mp4': ('skipped', 'no_audio'), 'id00002/x-y_z/00001.mp4': ('skipped', 'no_face'),
        'id00002/x-y_z/00003.mp4': ('failed', 'unreadable')}
    assert 'done 1 (+0 already done) / skipped 2 / failed 1' in capsys.readouterr().out

    before = os.stat(face).st_mtime_ns, os.stat(voice).st_mtime_ns
    (out / 'face' / 'id00001' / '.stale.jpg.1234.tmp').write_bytes(b'half a file')
    assert prep_voxceleb2.main(['--src', str(vox_src / 'mp4'), '--out', str(out), '--workers', '1']) == 0
    assert (os.stat(face).st_mtime_ns, os.stat(voice).st_mtime_ns) == before      # not redone
    assert not (out / 'face' / 'id00001' / '.stale.jpg.1234.tmp').exists()        # leftovers removed
    assert 'done 0 (+1 already done)' in capsys.readouterr().out


def test_voxceleb2_audio_from_the_aac_tree(vox_src, tmp_path):
    out = tmp_path / 'Vox'
    code = prep_voxceleb2.main(['--src', str(vox_src / 'mp4'), '--audio_src', str(vox_src / 'aac'), '--out', str(out),
                                '--workers', '2'])
    assert code == 0
    # 00002.mp4 has no audio track of its own, but its .m4a exists; 00001.mp4 has no .m4a
    assert (out / 'voice' / 'id00001_ab_c-d_00002.npy').is_file()
    assert (out / 'face' / 'id00001' / 'ab_c-d' / '00002.jpg').is_file()
    assert skipped_rows(out)['id00001/ab_c-d/00001.mp4']['reason'] == 'missing'       # its .m4a is missing


def make_dfdc(root, clips):
    """A DFDC part folder: ``clips`` maps file name -> (label, frame, audio or None)."""
    part = root / 'dfdc_train_part_0'
    part.mkdir(parents=True)
    meta = {}
    for name, (label, frame, audio) in clips.items():
        write_video(part / name, frame, audio=audio)
        meta[name] = {'label': label, 'split': 'train', **({'original': 'a.mkv'} if label == 'FAKE' else {})}
    (part / 'metadata.json').write_text(json.dumps(meta))
    return root


def test_dfdc_layout_and_the_mel_of_the_spec_recipe(tmp_path):
    real, fake = tone(4.0, f0=200), tone(4.0, f0=110, seed=3)
    src = make_dfdc(tmp_path / 'src', {'a.mkv': ('REAL', face_frame(), real), 'b.mkv': ('FAKE', face_frame(), fake)})
    out = tmp_path / 'DFDC'
    assert prep_dfdc.main(['--src', str(src), '--out', str(out), '--workers', '1']) == 0
    assert (out / 'real' / 'a.jpg').is_file() and (out / 'fake' / 'b.jpg').is_file()
    for name, samples in (('a', real), ('b', fake)):
        expected = mel_from_file(wav_of(tmp_path / f'{name}.wav', samples))   # librosa.load(sr=16000, duration=3)
        stored = np.load(out / 'audio_feat' / f'{name}.npy')
        assert stored.dtype == np.float32 and stored.shape == expected.shape == (512, 301)
        np.testing.assert_allclose(stored, expected, atol=1e-4)
    with open(out / 'videos.csv') as handle:
        assert list(csv.reader(handle))[1:] == [['a', 'real', 'dfdc_train_part_0', ''],
                                                ['b', 'fake', 'dfdc_train_part_0', 'a']]


def test_video_level_windows(tmp_path):
    src = make_dfdc(tmp_path / 'src', {'long.mkv': ('REAL', face_frame(), tone(8.0))})
    out = tmp_path / 'DFDC'
    assert prep_dfdc.main(['--src', str(src), '--out', str(out), '--windows', '3', '--workers', '1']) == 0
    assert sorted(os.listdir(out / 'real' / 'long')) == ['0.jpg', '1.jpg', '2.jpg']
    assert sorted(os.listdir(out / 'audio_feat' / 'long')) == ['0.npy', '0.wav', '1.npy', '1.wav', '2.npy', '2.wav']
    windows = preprocess.window_starts(8.0, 3)
    assert windows == [0.0, 2.5, 5.0]
    # each window's WAV: 4 s of 16 kHz audio from the window's start (the last one has 3 s left)
    y, sr, _ = preprocess.decode_audio(str(src / 'dfdc_train_part_0' / 'long.mkv'))
    y16 = preprocess.to_16k(y, sr)
    for k, start in enumerate(windows):
        wav, rate = soundfile.read(out / 'audio_feat' / 'long' / f'{k}.wav', dtype='float32')
        expected = y16[int(start * 16000):int(start * 16000) + 64000]
        assert rate == 16000 and len(wav) == len(expected) == min(64000, len(y16) - int(start * 16000))
        assert np.abs(wav - expected).max() <= 1 / 32768 + 1e-6
    # --voices mel writes the 2022 mels alone; a folder prepared before --voices existed resumes only with it
    out_mel = tmp_path / 'DFDC_mel'
    assert prep_dfdc.main(['--src', str(src), '--out', str(out_mel), '--windows', '3', '--workers', '1',
                           '--voices', 'mel']) == 0
    assert sorted(os.listdir(out_mel / 'audio_feat' / 'long')) == ['0.npy', '1.npy', '2.npy']
    options = json.loads((out_mel / 'prep_options.json').read_text())
    del options['voices']
    (out_mel / 'prep_options.json').write_text(json.dumps(options))
    assert prep_dfdc.main(['--src', str(src), '--out', str(out_mel), '--windows', '3', '--workers', '1']) == 2
    assert prep_dfdc.main(['--src', str(src), '--out', str(out_mel), '--windows', '3', '--workers', '1',
                           '--voices', 'mel']) == 0


def test_leading_silence_short_clips_and_silent_audio(tmp_path):
    speech = tone(4.0, f0=170)
    clips = {'quiet_start.mkv': ('REAL', face_frame(), np.concatenate([np.zeros(8000, np.float32), speech])),
             'short.mkv': ('REAL', face_frame(), tone(2.0)), 'tiny.mkv': ('REAL', face_frame(), tone(0.5)),
             'silent.mkv': ('FAKE', face_frame(), np.zeros(64000, np.float32))}
    src = make_dfdc(tmp_path / 'src', clips)
    out = tmp_path / 'DFDC'
    assert prep_dfdc.main(['--src', str(src), '--out', str(out), '--workers', '1', '--trim_leading_silence']) == 0
    # trimming the 0.5 s of silence gives the mel of the speech alone
    expected = mel_from_file(wav_of(tmp_path / 'speech.wav', speech))
    np.testing.assert_allclose(np.load(out / 'audio_feat' / 'quiet_start.npy'), expected, atol=1e-4)
    # 2 s: the mel of 2 s, padded to 301 frames with -80 dB (silence) columns
    short = np.load(out / 'audio_feat' / 'short.npy')
    own = mel_from_file(wav_of(tmp_path / 'short.wav', tone(2.0)))
    assert short.shape == (512, 301) and own.shape == (512, 201)
    np.testing.assert_allclose(short[:, :201], own, atol=1e-4)
    assert (short[:, 201:] == -80).all()
    rows = skipped_rows(out)
    assert rows['src/dfdc_train_part_0/tiny.mkv']['reason'] == 'too_short'
    assert rows['src/dfdc_train_part_0/silent.mkv']['reason'] == 'silent'


def test_nothing_usable_or_a_wrong_folder_gives_a_non_zero_status(tmp_path, capsys):
    src = make_dfdc(tmp_path / 'src', {'x.mkv': ('REAL', blank_frame(), tone(4.0))})
    assert prep_dfdc.main(['--src', str(src), '--out', str(tmp_path / 'o'), '--workers', '1']) == 1
    assert prep_dfdc.main(['--src', str(tmp_path / 'nowhere'), '--out', str(tmp_path / 'o')]) == 2
    assert 'is not a folder' in capsys.readouterr().err
    (src / 'dfdc_train_part_0' / 'metadata.json').write_text(json.dumps({'x.mkv': {'label': 'MAYBE'}}))
    assert prep_dfdc.main(['--src', str(src), '--out', str(tmp_path / 'o')]) == 2
    assert 'expected REAL or FAKE' in capsys.readouterr().err


def test_fakeavceleb_categories(tmp_path):
    src = tmp_path / 'FakeAVCeleb'
    files = {('RealVideo-RealAudio', 'id00076', '00109.mp4'): tone(4.0, f0=200),
             ('FakeVideo-RealAudio', 'id00076', '00109_id00001_wavtolip.mp4'): tone(4.0, f0=200),
             ('RealVideo-FakeAudio', 'id00076', '00109_fake.mp4'): tone(4.0, f0=90)}
    lines = ['source,target1,target2,method,category,type,race,gender,path']     # one column short, as released
    for (category, identity, name), audio in files.items():
        folder = src / category / 'African' / 'men' / identity
        folder.mkdir(parents=True, exist_ok=True)
        write_video(folder / name, face_frame(), audio=audio)
        method = {'RealVideo-RealAudio': 'real', 'FakeVideo-RealAudio': 'wav2lip', 'RealVideo-FakeAudio': 'rtvc'}
        lines.append(f'{identity},id00001,-,{method[category]},A,{category},African,men,{name},'
                     f'FakeAVCeleb/{category}/African/men/{identity}')
    (src / 'meta_data.csv').write_text('\n'.join(lines) + '\n')
    out = tmp_path / 'FAVC'
    assert prep_fakeavceleb.main(['--src', str(src), '--out', str(out), '--workers', '1']) == 0
    assert sorted(os.listdir(out / 'real')) == ['RVRA_id00076_00109.jpg']
    assert sorted(os.listdir(out / 'fake')) == ['FVRA_id00076_00109_id00001_wavtolip.jpg',
                                                'RVFA_id00076_00109_fake.jpg']
    with open(out / 'categories.csv', newline='') as handle:
        rows = {r['video']: r for r in csv.DictReader(handle)}
    assert rows['RVFA_id00076_00109_fake']['category'] == 'RealVideo-FakeAudio'
    assert rows['FVRA_id00076_00109_id00001_wavtolip']['method'] == 'wav2lip'
    assert rows['RVRA_id00076_00109']['target1'] == 'id00001'


def test_deepfaketimit_with_vidtimit(tmp_path):
    vid, fakes = tmp_path / 'VidTIMIT', tmp_path / 'DeepfakeTIMIT'
    for subject in ('fadg0', 'fram1'):
        frames = vid / subject / 'video' / 'sa1'
        frames.mkdir(parents=True)
        for k in range(1, 101):                                   # 4 s at 25 fps, numbered files without extension
            Image.fromarray(face_frame()).save(frames / f'{k:03d}', format='JPEG')
        (vid / subject / 'video' / 'head').mkdir()
        (vid / subject / 'audio').mkdir()
        wav_of(vid / subject / 'audio' / 'sa1.wav', tone(4.0, f0=150 if subject == 'fadg0' else 220))
    (fakes / 'higher_quality' / 'fadg0').mkdir(parents=True)
    write_video(fakes / 'higher_quality' / 'fadg0' / 'sa1-video-fram1.avi', face_frame(), audio=None)
    out = tmp_path / 'TIMIT'
    assert prep_timit.main(['--fakes', str(fakes), '--vidtimit', str(vid), '--out', str(out), '--workers', '1']) == 0
    assert sorted(os.listdir(out / 'real')) == ['real-fadg0-sa1.jpg']
    assert sorted(os.listdir(out / 'fake')) == ['fake-higher-fadg0-sa1-fram1.jpg']
    # the fake's voice is the original recording of fadg0
    np.testing.assert_allclose(np.load(out / 'audio_feat' / 'fake-higher-fadg0-sa1-fram1.npy'),
                               mel_from_file(str(vid / 'fadg0' / 'audio' / 'sa1.wav')), atol=1e-4)
    lower = ['--fakes', str(fakes), '--vidtimit', str(vid), '--out', str(out), '--quality', 'lower']
    assert prep_timit.main(lower) == 2                                   # no lower_quality/ folder


@pytest.mark.parametrize('width,height', [(1920, 1080), (1080, 1920)])
@pytest.mark.parametrize('light', ['dark', 'bright'])
def test_faces_are_found_in_dfdc_shaped_frames(width, height, light):
    """DFDC's 1080p frames, landscape and portrait, with a face about 150 pixels tall, dim or washed out. The
    detector works on the frame brought to 640 pixels across its shorter side (portrait included); with the longer
    side at 640, as before, the face fell below dlib's 80-pixel window in portrait frames and dark ones."""
    from scripts.make_videos import scene
    frame = scene(width, height, 150, light)
    cropper = preprocess.FaceCropper()
    assert cropper.working_scale(height, width) == pytest.approx(640 / 1080)
    boxes = cropper.boxes(frame)
    assert boxes, 'no face found'
    left, top, right, bottom = boxes[0]
    # the face box of make_videos' scene: centred at (0.5, 0.42) of the frame, 150 pixels on a side
    assert abs((left + right) / 2 - 0.5 * width) < 40 and abs((top + bottom) / 2 - 0.42 * height) < 60
    assert 100 < right - left < 220


def test_a_window_whose_middle_frame_has_no_face_tries_other_frames(tmp_path):
    """The middle frame of the only window (1.5 s) is blank; the frame 0.5 s before it shows the face."""
    fps = 10
    frames = [blank_frame() if 1.3 <= i / fps < 1.8 else face_frame() for i in range(3 * fps + 5)]
    path = tmp_path / 'turned_away.mkv'
    write_video(path, frames, seconds=3.5, fps=fps, audio=tone(3.5))
    windows = preprocess.clip_windows(str(path), fps=fps)
    assert len(windows) == 1 and windows[0]['face'] is not None
    assert windows[0]['time'] == pytest.approx(1.0, abs=0.11)
    blank = tmp_path / 'no_face.mkv'
    write_video(blank, blank_frame(), seconds=3.5, fps=fps, audio=tone(3.5))
    assert preprocess.clip_windows(str(blank), fps=fps)[0]['face'] is None   # every frame tried, none has one


def test_prep_dfdc_finds_the_face_in_a_dark_portrait_video(tmp_path):
    """A DFDC-shaped video end to end: 1080x1920 portrait, dark, a face about 150 pixels tall, H.264, AAC."""
    from scripts.make_videos import scene
    src = tmp_path / 'part'
    src.mkdir()
    write_video(src / 'portrait.mp4', scene(1080, 1920, 150, 'dark'), seconds=3.5, fps=5, audio=tone(3.5, sr=44100),
                sr=44100, video_codec='libx264')
    (src / 'metadata.json').write_text(json.dumps({'portrait.mp4': {'label': 'REAL'}}))
    out = tmp_path / 'out'
    assert prep_dfdc.main(['--src', str(src), '--out', str(out)]) == 0
    face = out / 'real' / 'portrait.jpg'
    assert face.is_file() and Image.open(face).size == (224, 224)
