"""FakeAVCeleb videos -> the DFDC layout, real = RealVideo-RealAudio, fake = the three other categories.

    python -m scripts.prep_fakeavceleb --src FakeAVCeleb_v1.2 --out Dataset/FakeAVCeleb_full --workers 8
    python -m scripts.prep_fakeavceleb --src FakeAVCeleb_v1.2 --out Dataset/FakeAVCeleb_trim --trim_leading_silence

``--src`` holds the four trees ``RealVideo-RealAudio/``, ``FakeVideo-RealAudio/``, ``RealVideo-FakeAudio/`` and
``FakeVideo-FakeAudio/`` (each ``<race>/<gender>/<id>/<file>.mp4``) and, optionally, ``meta_data.csv``. Video names
in the layout are ``<RVRA|FVRA|RVFA|FVFA>_<id>_<file stem>`` (file names repeat across folders).
``categories.csv`` keeps each video's category (the tree it came from), its generation method and the identities
of meta_data.csv (source, target1, target2), for per-category results and identity-disjoint splits.
FakeAVCeleb's fake audio starts with a short silence that alone gives fakes away (docs/method.md):
``--trim_leading_silence`` removes it. ``--windows K`` writes the video-level layout (see prep_dfdc.py). The other
rules, resuming and ``skipped.csv`` are those of prep/video.py.
"""
import csv
import os
import sys

if __package__ in (None, ''):
    raise SystemExit('run it from the repository root as a module: python -m scripts.prep_fakeavceleb ...')

from data.layouts import dfdc_paths
from prep.video import Clip, main_for
from util import util

CATEGORIES = {'RealVideo-RealAudio': 'RVRA', 'FakeVideo-RealAudio': 'FVRA', 'RealVideo-FakeAudio': 'RVFA',
              'FakeVideo-FakeAudio': 'FVFA'}
REAL = 'RealVideo-RealAudio'


def add_arguments(parser):
    """Add ``--src``, the folder of the four category trees."""
    parser.add_argument('--src', required=True, help='FakeAVCeleb folder holding the four category trees')


def read_metadata(path):
    """{(category, id folder, file name): (method, source, target1, target2)} from FakeAVCeleb's meta_data.csv.

    Rows read by content, not by header (the released file's header has one column fewer than its rows): the
    first four fields are source, target1, target2, method; the category is the field naming one of the four
    trees; the file name is the next field ending in .mp4; the folder is the next one holding a '/'.
    """
    table = {}
    with open(path, newline='') as handle:
        for row in csv.reader(handle):
            where = [i for i, field in enumerate(row) if field.strip() in CATEGORIES]
            if len(row) < 6 or not where:
                continue                                 # the header, or a line that is not a video
            i = where[0]
            name = next((f.strip() for f in row[i + 1:] if f.strip().lower().endswith('.mp4')), None)
            folder = next((f.strip() for f in row[i + 1:] if '/' in f), None)
            if name is None or folder is None:
                continue
            identity = folder.rstrip('/').split('/')[-1]
            source, target1, target2, method = (f.strip() for f in row[:4])
            table[(row[i].strip(), identity, name)] = (method, source, target1, target2)
    return table


def build(args):
    """The clips of every mp4 in the category trees, and categories.csv written; returns (clips, description)."""
    if not os.path.isdir(args.src):
        raise ValueError(f'--src {args.src} is not a folder (expected the FakeAVCeleb category trees)')
    present = [c for c in CATEGORIES if os.path.isdir(os.path.join(args.src, c))]
    if REAL not in present or len(present) < 2:
        raise ValueError(f'--src {args.src} must hold {REAL}/ and at least one fake tree of '
                         f'{", ".join(c for c in CATEGORIES if c != REAL)}; found {present or "none"}')
    meta_path = os.path.join(args.src, 'meta_data.csv')
    metadata = read_metadata(meta_path) if os.path.isfile(meta_path) else {}
    clips, rows = [], []
    for category in present:
        top = os.path.join(args.src, category)
        for folder, dirs, files in os.walk(top):
            dirs.sort()
            for name in sorted(f for f in files if f.lower().endswith('.mp4')):
                identity = os.path.basename(folder)
                video = f'{CATEGORIES[category]}_{identity}_{os.path.splitext(name)[0]}'
                kind = 'real' if category == REAL else 'fake'
                face_out, voice_out = dfdc_paths(args.out, kind, video, args.windows > 1)
                clips.append(Clip(video=os.path.join(folder, name), face_out=face_out, voice_out=voice_out,
                                  windows=args.windows))
                method, source, target1, target2 = metadata.get((category, identity, name),
                                                                ('', identity, '', ''))
                rows.append([video, category, method, source, target1, target2,
                             os.path.relpath(os.path.join(folder, name), args.src)])
    os.makedirs(args.out, exist_ok=True)
    util.atomic_write_csv(os.path.join(args.out, 'categories.csv'),
                ['video', 'category', 'method', 'source', 'target1', 'target2', 'input'], rows)
    return clips, 'FakeAVCeleb videos'


def main(argv=None):
    """Preprocess the FakeAVCeleb videos; exit status 0 if anything usable exists, 1 if not, 2 for bad input."""
    return main_for(__doc__.split('\n\n')[0], add_arguments, build, argv, windows=True)


if __name__ == '__main__':
    sys.exit(main())
