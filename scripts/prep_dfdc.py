"""DFDC videos -> the DFDC layout (real/<video>.jpg, fake/<video>.jpg, audio_feat/<video>.npy).

    python -m scripts.prep_dfdc --src dfdc_train_all --out Dataset/DFDC_full --workers 8
    python -m scripts.prep_dfdc --src dfdc_train_all --out Dataset/DFDC_video --windows 5   # video-level layout

``--src`` holds ``dfdc_train_part_*/`` folders, each with its mp4 files and ``metadata.json`` (``{"x.mp4":
{"label": "REAL" | "FAKE", "original": ...}}``), or is one such folder. With ``--windows K`` (K > 1) every video
gives K voice windows and the frame in the middle of each: ``real/<video>/<k>.jpg`` and ``audio_feat/<video>/<k>.npy``.
``videos.csv`` lists every video with its label, part and (for fakes) the real video it was made from. The
decoding, cropping, short-clip and silence rules, resuming and ``skipped.csv`` are those of prep/video.py.
"""
import json
import os
import sys

if __package__ in (None, ''):
    raise SystemExit('run it from the repository root as a module: python -m scripts.prep_dfdc ...')

from data.layouts import dfdc_paths
from prep.video import Clip, main_for
from util import util

LABELS = {'REAL': 'real', 'FAKE': 'fake'}


def add_arguments(parser):
    """Add ``--src``, the folder of DFDC parts."""
    parser.add_argument('--src', required=True, help='folder of dfdc_train_part_*/ folders (or one part folder)')


def build(args):
    """The clips of every video in the parts' metadata.json, and videos.csv written; returns (clips, description)."""
    if not os.path.isdir(args.src):
        raise ValueError(f'--src {args.src} is not a folder (expected dfdc_train_part_*/ folders with metadata.json)')
    if os.path.isfile(os.path.join(args.src, 'metadata.json')):
        parts = [args.src]
    else:
        parts = sorted(os.path.join(args.src, n) for n in os.listdir(args.src)
                       if os.path.isfile(os.path.join(args.src, n, 'metadata.json')))
    if not parts:
        raise ValueError(f'--src {args.src}: no metadata.json in it or in any sub-folder (DFDC parts hold one each)')
    clips, rows, seen = [], [], {}
    for part in parts:
        path = os.path.join(part, 'metadata.json')
        try:
            with open(path) as handle:
                metadata = json.load(handle)
        except (OSError, ValueError) as err:
            raise ValueError(f'{path}: cannot read it as JSON ({err})') from err
        for name, info in sorted(metadata.items()):
            label = LABELS.get(str(info.get('label', '')).upper()) if isinstance(info, dict) else None
            if label is None:
                raise ValueError(f'{path}: {name} has label {info!r}; expected REAL or FAKE')
            video = os.path.splitext(name)[0]
            if video in seen:
                raise ValueError(f'video name {video} appears in both {seen[video]} and {part}')
            seen[video] = part
            face_out, voice_out = dfdc_paths(args.out, label, video, args.windows > 1)
            clips.append(Clip(video=os.path.join(part, name), face_out=face_out, voice_out=voice_out,
                              windows=args.windows))
            rows.append([video, label, os.path.basename(part), os.path.splitext(info.get('original') or '')[0]])
    os.makedirs(args.out, exist_ok=True)
    util.atomic_write_csv(os.path.join(args.out, 'videos.csv'), ['video', 'label', 'part', 'original'], rows)
    return clips, 'DFDC videos'


def main(argv=None):
    """Preprocess the DFDC videos; exit status 0 if anything usable exists, 1 if not, 2 for bad input."""
    return main_for(__doc__.split('\n\n')[0], add_arguments, build, argv, windows=True)


if __name__ == '__main__':
    sys.exit(main())
