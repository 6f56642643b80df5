"""Where each file of the two on-disk layouts lives: one function per layout, shared by the datasets that read
them and the prep scripts that write them.

VoxCeleb2 layout (training)::

    <root>/face/<identity>/<video>/<clip>.jpg
    <root>/voice/<identity>_<video>_<clip>.npy      the clip's mel in dB, (n_mels, frames)
    <root>/voice/<identity>_<video>_<clip>.wav      the clip's audio for journal models (16 kHz)

DFDC layout (testing and fine-tuning; DFDC, FakeAVCeleb, DeepfakeTIMIT)::

    <root>/<real|fake>/<video>.jpg                  one window per video, with
    <root>/audio_feat/<video>.npy                   (and <video>.wav)
    <root>/<real|fake>/<video>/<k>.jpg              several windows per video (k = 0, 1, ...), with
    <root>/audio_feat/<video>/<k>.npy               (and <k>.wav)

A voice file's extension says its kind (``data/inputs.py``): ``.npy`` the 2022 release's mel, ``.wav`` the audio
journal models read. The functions below take it as ``ext``.
"""
import os

VOX_LAYOUT = ('<dataroot>/face/<identity>/<video>/<frame>.jpg with its voice at '
              '<dataroot>/voice/<identity>_<video>_<frame>.npy')
DFDC_LAYOUT = ('<dataroot>/real/<video>.jpg and <dataroot>/fake/<video>.jpg, each with its voice at '
               '<dataroot>/audio_feat/<video>.npy (several windows per video: <dataroot>/real/<video>/<k>.jpg with '
               '<dataroot>/audio_feat/<video>/<k>.npy)')
DFDC_LABELS = {'real': 1, 'fake': 0}


def vox_voice_name(identity, video, clip, ext='.npy'):
    """File name of a clip's voice in ``<root>/voice/``: ``<identity>_<video>_<clip><ext>``."""
    return f'{identity}_{video}_{clip}{ext}'


def vox_paths(root, identity, video, clip, face_ext='.jpg', ext='.npy'):
    """(face path, voice path) of one VoxCeleb2-layout clip."""
    return (os.path.join(root, 'face', identity, video, clip + face_ext),
            os.path.join(root, 'voice', vox_voice_name(identity, video, clip, ext)))


def dfdc_paths(root, folder, video, windows=False, ext='.npy'):
    """(face path, voice path) of a DFDC-layout video in ``folder`` ('real' or 'fake'); with ``windows`` the two
    folders that hold its windows ``<k>.jpg`` and ``<k><ext>``."""
    if windows:
        return os.path.join(root, folder, video), os.path.join(root, 'audio_feat', video)
    return os.path.join(root, folder, video + '.jpg'), os.path.join(root, 'audio_feat', video + ext)


def dfdc_window_voice(root, video, window_stem, ext='.npy'):
    """The voice file of window ``<window_stem>.jpg`` of a several-window video."""
    return os.path.join(root, 'audio_feat', video, window_stem + ext)
