"""Where each file of the two on-disk layouts lives: one function per layout, shared by the datasets that read
them and the prep scripts that write them.

VoxCeleb2 layout (training)::

    <root>/face/<identity>/<video>/<clip>.jpg
    <root>/voice/<identity>_<video>_<clip>.npy      the clip's mel in dB, (n_mels, frames)

DFDC layout (testing and fine-tuning; DFDC, FakeAVCeleb, DeepfakeTIMIT)::

    <root>/<real|fake>/<video>.jpg                  one window per video, with
    <root>/audio_feat/<video>.npy
    <root>/<real|fake>/<video>/<k>.jpg              several windows per video (k = 0, 1, ...), with
    <root>/audio_feat/<video>/<k>.npy
"""
import os

VOX_LAYOUT = ('<dataroot>/face/<identity>/<video>/<frame>.jpg with its voice at '
              '<dataroot>/voice/<identity>_<video>_<frame>.npy')
DFDC_LAYOUT = ('<dataroot>/real/<video>.jpg and <dataroot>/fake/<video>.jpg, each with its voice at '
               '<dataroot>/audio_feat/<video>.npy (several windows per video: <dataroot>/real/<video>/<k>.jpg with '
               '<dataroot>/audio_feat/<video>/<k>.npy)')
DFDC_LABELS = {'real': 1, 'fake': 0}


def vox_voice_name(identity, video, clip):
    """File name of a clip's voice in ``<root>/voice/``: ``<identity>_<video>_<clip>.npy``."""
    return f'{identity}_{video}_{clip}.npy'


def vox_paths(root, identity, video, clip, face_ext='.jpg'):
    """(face path, voice path) of one VoxCeleb2-layout clip."""
    return (os.path.join(root, 'face', identity, video, clip + face_ext),
            os.path.join(root, 'voice', vox_voice_name(identity, video, clip)))


def dfdc_paths(root, folder, video, windows=False):
    """(face path, voice path) of a DFDC-layout video in ``folder`` ('real' or 'fake'); with ``windows`` the two
    folders that hold its windows ``<k>.jpg`` and ``<k>.npy``."""
    if windows:
        return os.path.join(root, folder, video), os.path.join(root, 'audio_feat', video)
    return os.path.join(root, folder, video + '.jpg'), os.path.join(root, 'audio_feat', video + '.npy')


def dfdc_window_voice(root, video, window_stem):
    """The voice file of window ``<window_stem>.jpg`` of a several-window video."""
    return os.path.join(root, 'audio_feat', video, window_stem + '.npy')
