"""AV-Deepfake1M or LAV-DF videos -> the DFDC layout, with every window labelled by its overlap with the fake segments.

    python -m scripts.prep_av1m --src AV-Deepfake1M --out Dataset/AV1M_val --workers 8          # val split
    python -m scripts.prep_av1m --src LAV-DF --out Dataset/LAVDF_test --workers 8               # test split

``--src`` is the published folder. AV-Deepfake1M: ``<split>_metadata.json`` beside ``<split>/`` (the video of an
entry is ``<src>/<split>/<file>``); its test labels are not public, so the default split is ``val``. LAV-DF:
``metadata.json`` (or ``metadata.min.json``) beside ``train/``, ``dev/``, ``test/`` (the video of an entry is
``<src>/<file>``); the default split is ``test``. ``--metadata`` names another file; ``--split`` another split
(``all``: every entry).

A fake video of these sets is a real one with a few short segments changed (the voice, the face or both). Each
video is cut into 3 s windows every ``--hop`` seconds (window k starts at k x hop), each scored by VFD on its own:
``<out>/fake/<video>/<k>.jpg`` (or ``real/``) and ``<out>/audio_feat/<video>/<k>.npy`` (and ``.wav``). Video
names are the published file path with ``/`` written as ``__`` and the extension dropped. Beside them:

* ``segments.json``: every video's published file name, label, modify_type, duration and fake segments (all,
  visual, audio), and the grid (``hop``, window length): what test_DF.py needs for window labels and for temporal
  localisation (``data/segments.py``);
* ``windows.csv``: every window of the grid with its span, its overlap with the fake segments (seconds and
  fraction of the window; also with the visual and the audio segments alone) and its label: fake when the overlap
  is above ``--min_overlap`` seconds (default 0: any overlap), real otherwise;
* ``categories.csv``: video, category (= modify_type), for per-category results.

The windows are placed on the video's timeline, so ``--trim_leading_silence`` (which would shift them) is refused.
Faces: the prep rules of prep/video.py (dlib; ``--detector none`` for face-centred crops). Resuming, ``--shard K/N``,
``--workers`` and ``skipped.csv`` are those of prep/video.py.
"""
import os
import sys

if __package__ in (None, ''):
    raise SystemExit('run it from the repository root as a module: python -m scripts.prep_av1m ...')

from data import segments as seg
from data.errors import DatasetError
from data.layouts import dfdc_paths
from data.audio import DURATION
from prep.video import Clip, grid_starts, main_for
from util import localisation, runs, util

DEFAULT_SPLIT = {'av1m': 'val', 'lavdf': 'test'}


def add_arguments(parser):
    """``--src``, ``--metadata``, ``--split``, ``--hop``, ``--min_overlap``."""
    parser.add_argument('--src', required=True, help='the published AV-Deepfake1M or LAV-DF folder')
    parser.add_argument('--metadata', default='',
                        help='metadata JSON to read (default: <src>/metadata.json or metadata.min.json for LAV-DF, '
                             '<src>/<split>_metadata.json for AV-Deepfake1M)')
    parser.add_argument('--split', default='',
                        help='the split to prepare (default: val for AV-Deepfake1M, whose test labels are not '
                             'public; test for LAV-DF); all = every entry of the metadata')
    parser.add_argument('--hop', type=float, default=1.0,
                        help='seconds between the starts of consecutive 3 s windows (window k starts at k x hop)')
    parser.add_argument('--min_overlap', type=float, default=0.0,
                        help='a window is fake when it overlaps the fake segments by more than this many seconds')


def find_metadata(args):
    """(flavour, metadata path, split)."""
    lavdf = [os.path.join(args.src, n) for n in ('metadata.json', 'metadata.min.json')]
    if args.metadata:
        path = args.metadata
        flavour = 'lavdf' if os.path.basename(path) in ('metadata.json', 'metadata.min.json') else 'av1m'
    elif any(os.path.isfile(p) for p in lavdf):
        path, flavour = next(p for p in lavdf if os.path.isfile(p)), 'lavdf'
    else:
        flavour = 'av1m'
        if args.split == 'all':
            raise ValueError('--split all reads one metadata file with every split: name it with --metadata')
        path = os.path.join(args.src, f'{args.split or DEFAULT_SPLIT["av1m"]}_metadata.json')
    split = args.split or DEFAULT_SPLIT[flavour]
    if not os.path.isfile(path):
        found = sorted(n for n in os.listdir(args.src) if n.endswith('.json')) if os.path.isdir(args.src) else []
        raise ValueError(f'no metadata at {path}; --src must hold AV-Deepfake1M\'s <split>_metadata.json or LAV-DF\'s '
                         f'metadata.json (JSON files there: {", ".join(found) or "none"}), or name it with --metadata')
    return flavour, path, split


def base_of(args, flavour, split, record):
    """The folder a record's file is relative to: ``<src>/<split>`` for AV-Deepfake1M, ``<src>`` for LAV-DF."""
    if flavour == 'lavdf':
        return args.src
    part = record['split'] or split
    return os.path.join(args.src, part) if part != 'all' and runs.is_plain_name(part) else args.src


def video_name(file):
    """The layout's name of a published file path: '/' as '__', the extension dropped."""
    stem = os.path.splitext(file)[0]
    return stem.replace('\\', '/').replace('/', '__')


def inside(base, file):
    """The path of ``file`` under ``base``, or None when it would leave ``base`` (absolute, '..', a link out)."""
    if not file or os.path.isabs(file) or '\0' in file or '..' in file.replace('\\', '/').split('/'):
        return None
    path = os.path.join(base, file)
    real_base = os.path.realpath(base)
    return path if os.path.realpath(path).startswith(real_base + os.sep) else None


def window_rows(name, info, hop, min_overlap):
    """The windows.csv rows of one video's grid (from its published duration; one window when it is unknown)."""
    duration = info['duration'] or DURATION
    rows = []
    for k, start in enumerate(grid_starts(duration, hop)):
        start, end = seg.window_span(k, hop, DURATION, info['duration'])
        label, seconds, fraction = localisation.window_label(start, end, info['fake_segments'], min_overlap)
        rows.append([name, k, f'{start:.3f}', f'{end:.3f}', label, f'{seconds:.3f}', f'{fraction:.4f}',
                     f'{localisation.overlap(start, end, info["visual_fake_segments"]):.3f}',
                     f'{localisation.overlap(start, end, info["audio_fake_segments"]):.3f}'])
    return rows


def build(args):
    """The clips of the chosen split, and segments.json, windows.csv and categories.csv written; returns
    (clips, description)."""
    if not os.path.isdir(args.src):
        raise ValueError(f'--src {args.src} is not a folder (expected the AV-Deepfake1M or LAV-DF folder)')
    if args.trim_leading_silence:
        raise ValueError('--trim_leading_silence would move every window off the video\'s timeline, where the fake '
                         'segments are given; these sets are prepared untrimmed')
    if not 0.1 <= args.hop <= 60:
        raise ValueError(f'--hop must lie between 0.1 and 60 seconds, got {args.hop}')
    if not 0 <= args.min_overlap < DURATION:
        raise ValueError(f'--min_overlap must lie in [0, {DURATION:g}) seconds, got {args.min_overlap}')
    if args.split and not (runs.is_plain_name(args.split) and args.split.replace('_', '').replace('-', '').isalnum()):
        raise ValueError(f'--split {args.split!r}: a split is a plain name (val, test, train, all)')
    flavour, path, split = find_metadata(args)
    try:
        records = seg.read_metadata(path)
    except DatasetError as err:
        raise ValueError(str(err)) from err
    chosen = [r for r in records if split == 'all' or not r['split'] or r['split'] == split]
    if not chosen:
        splits = sorted({r['split'] for r in records})
        raise ValueError(f'{path} lists no video of split {split!r} (its splits: {", ".join(splits) or "none"})')
    clips, videos, windows, categories, names = [], {}, [], [], {}
    for r in chosen:
        base = base_of(args, flavour, split, r)
        source = inside(base, r['file'])
        if source is None:
            raise ValueError(f'{path}: the file {r["file"]!r} would leave {base}; refusing the metadata')
        name = video_name(r['file'])
        if name in names:
            raise ValueError(f'{path}: {r["file"]!r} and {names[name]!r} would both be named {name}')
        names[name] = r['file']
        kind = 'real' if r['label'] == 1 else 'fake'
        face_out, voice_out = dfdc_paths(args.out, kind, name, windows=True)
        clips.append(Clip(video=source, face_out=face_out, voice_out=voice_out, hop=args.hop))
        videos[name] = {k: r[k] for k in ('file', 'split', 'label', 'modify_type', 'duration', 'fake_segments',
                                          'visual_fake_segments', 'audio_fake_segments')}
        windows += window_rows(name, r, args.hop, args.min_overlap)
        categories.append([name, r['modify_type'], r['split'], r['file']])
    util.mkdirs(args.out)
    util.atomic_write_json(os.path.join(args.out, seg.FILE_NAME), {
        'format': seg.FORMAT, 'version': seg.VERSION, 'hop': args.hop, 'window_seconds': DURATION,
        'min_overlap': args.min_overlap, 'source': os.path.abspath(path), 'flavour': flavour, 'split': split,
        'videos': videos})
    util.atomic_write_csv(os.path.join(args.out, 'windows.csv'),
                          ['video', 'window', 'start', 'end', 'label', 'overlap', 'fraction', 'visual_overlap',
                           'audio_overlap'], windows)
    util.atomic_write_csv(os.path.join(args.out, 'categories.csv'), ['video', 'category', 'split', 'file'],
                          categories)
    return clips, f'{"AV-Deepfake1M" if flavour == "av1m" else "LAV-DF"} {split} videos'


def settings(args):
    """The options that change what a window is (stored and checked with the others in prep_options.json)."""
    return {'hop': args.hop, 'min_overlap': args.min_overlap}


def main(argv=None):
    """Preprocess the videos; exit status 0 if anything usable exists, 1 if not, 2 for bad input."""
    return main_for(__doc__.split('\n\n')[0], add_arguments, build, argv, extra_settings=settings)


if __name__ == '__main__':
    sys.exit(main())
