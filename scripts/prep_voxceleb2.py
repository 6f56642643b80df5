"""VoxCeleb2 videos -> the VoxCeleb2 layout of Vox_image (face/<id>/<video>/<clip>.jpg, voice/<id>_<video>_<clip>.npy).

    python -m scripts.prep_voxceleb2 --src VoxCeleb2/dev/mp4 --out Dataset/Voxceleb2 --workers 8
    python -m scripts.prep_voxceleb2 --src VoxCeleb2/dev/mp4 --audio_src VoxCeleb2/dev/aac --out Dataset/Voxceleb2

``--src`` holds ``<id>/<video>/<clip>.mp4``; the audio is the mp4's own track, or ``<audio_src>/<id>/<video>/
<clip>.m4a`` when ``--audio_src`` is given. Each clip gives one face (the frame 1.5 s in), the mel of its first
3 s and (``--voices``, both by default) the 16 kHz WAV that journal models read, cut as the journal's preprocessing
cut VoxCeleb2 (seconds 1 to 4, the clip played twice first when shorter than 4 s); the clip number plays the part of
the layout's frame number. VoxCeleb2's videos are already face-centred
crops: ``--detector none`` keeps the whole frame and runs much faster than the default dlib detector. The
decoding, cropping, short-clip and silence rules, resuming and ``skipped.csv`` are those of prep/video.py.
"""
import os
import sys

if __package__ in (None, ''):
    raise SystemExit('run it from the repository root as a module: python -m scripts.prep_voxceleb2 ...')

from data.layouts import vox_paths
from prep.video import Clip, main_for
from data.Vox_image_dataset import interleave


def add_arguments(parser):
    """Add ``--src``, ``--audio_src`` and ``--max_clips_per_id``."""
    parser.add_argument('--src', required=True, help='the mp4 tree: <src>/<id>/<video>/<clip>.mp4')
    parser.add_argument('--audio_src', default='', help='optional aac tree: <audio_src>/<id>/<video>/<clip>.m4a')
    parser.add_argument('--max_clips_per_id', type=int, default=0,
                        help='at most this many clips per identity, taken in turn from its videos (0 = all)')


def sorted_dirs(folder):
    """The names of the sub-folders of ``folder``, sorted."""
    return sorted(e.name for e in os.scandir(folder) if e.is_dir())


def build(args):
    """The clips of every identity folder (id...), taken in turn from its videos; returns (clips, description)."""
    if not os.path.isdir(args.src):
        raise ValueError(f'--src {args.src} is not a folder (expected <src>/<id>/<video>/<clip>.mp4)')
    if args.audio_src and not os.path.isdir(args.audio_src):
        raise ValueError(f'--audio_src {args.audio_src} is not a folder (expected <audio_src>/<id>/<video>/<clip>.m4a)')
    identities = [name for name in sorted_dirs(args.src) if name.startswith('id')]
    if not identities:
        raise ValueError(f'--src {args.src} holds no identity folders (id...); expected <src>/<id>/<video>/<clip>.mp4')
    clips = []
    for identity in identities:
        per_video = []
        for video in sorted_dirs(os.path.join(args.src, identity)):
            folder = os.path.join(args.src, identity, video)
            names = sorted(n for n in os.listdir(folder) if n.lower().endswith('.mp4'))
            per_video.append([(video, n[:-4]) for n in names])
        order = interleave(per_video)
        if args.max_clips_per_id:
            order = order[:args.max_clips_per_id]
        for video, clip in order:
            audio = os.path.join(args.audio_src, identity, video, clip + '.m4a') if args.audio_src else None
            face_out, voice_out = vox_paths(args.out, identity, video, clip)
            clips.append(Clip(video=os.path.join(args.src, identity, video, clip + '.mp4'), audio=audio,
                              face_out=face_out, voice_out=voice_out, journal_cut='clip'))
    return clips, 'VoxCeleb2 clips'


def main(argv=None):
    """Preprocess the VoxCeleb2 clips; exit status 0 if anything usable exists, 1 if not, 2 for bad input."""
    return main_for(__doc__.split('\n\n')[0], add_arguments, build, argv)


if __name__ == '__main__':
    sys.exit(main())
