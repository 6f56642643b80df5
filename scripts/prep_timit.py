"""DeepfakeTIMIT (fakes) with VidTIMIT (reals and the voices) -> the DFDC layout.

    python -m scripts.prep_timit --fakes DeepfakeTIMIT --vidtimit VidTIMIT --out Dataset/DeepfakeTIMIT --quality higher

``--fakes`` holds ``higher_quality/`` and/or ``lower_quality/``, each ``<subject>/<sentence>-video-<face>.avi``: the
face of subject <face> swapped into <subject>'s recording of <sentence>. Those videos carry no sound, so a fake's
voice is the original recording's, ``<vidtimit>/<subject>/audio/<sentence>.wav``: the voice of <subject> with the
face of <face>, the mismatch VFD looks for. The reals are VidTIMIT's recordings, ``<subject>/video/<sentence>/``
(numbered frame images, 25 frames per second, ``--fps``) with the same wav files; by default only the subjects
that appear among the fakes (``--reals all`` takes every subject). The head-rotation folders (head, head2, head3)
have no audio and are left out. Video names: ``real-<subject>-<sentence>`` and
``fake-<quality>-<subject>-<sentence>-<face>``; ``videos.csv`` lists them with their subjects. ``--windows K``
writes the video-level layout (see prep_dfdc.py); the other rules, resuming and ``skipped.csv`` are those of
prep/video.py.
"""
import os
import sys

if __package__ in (None, ''):
    raise SystemExit('run it from the repository root as a module: python -m scripts.prep_timit ...')

from data.layouts import dfdc_paths
from prep.video import Clip, main_for
from util import util

QUALITIES = ('higher_quality', 'lower_quality')


def add_arguments(parser):
    """Add ``--fakes``, ``--vidtimit``, ``--quality``, ``--reals`` and ``--fps``."""
    parser.add_argument('--fakes', required=True, help='DeepfakeTIMIT folder (higher_quality/, lower_quality/)')
    parser.add_argument('--vidtimit', required=True, help='VidTIMIT folder (<subject>/video/, <subject>/audio/)')
    parser.add_argument('--quality', choices=('higher', 'lower', 'both'), default='higher',
                        help='which DeepfakeTIMIT set gives the fakes')
    parser.add_argument('--reals', choices=('paired', 'all'), default='paired',
                        help='VidTIMIT subjects used as reals: those that appear among the fakes, or all')
    parser.add_argument('--fps', type=float, default=25.0, help="frame rate of VidTIMIT's frame folders")


def build(args):
    """The DeepfakeTIMIT fakes and the VidTIMIT reals as clips, and videos.csv written; returns (clips, description)."""
    for flag, folder in (('--fakes', args.fakes), ('--vidtimit', args.vidtimit)):
        if not os.path.isdir(folder):
            raise ValueError(f'{flag} {folder} is not a folder')
    qualities = QUALITIES if args.quality == 'both' else (f'{args.quality}_quality',)
    missing = [q for q in qualities if not os.path.isdir(os.path.join(args.fakes, q))]
    if missing:
        raise ValueError(f'--fakes {args.fakes} lacks {", ".join(missing)}/ (expected <quality>/<subject>/'
                         f'<sentence>-video-<face>.avi)')
    clips, rows, subjects = [], [], set()
    for quality in qualities:
        top = os.path.join(args.fakes, quality)
        for subject in sorted(os.listdir(top)):
            folder = os.path.join(top, subject)
            if not os.path.isdir(folder):
                continue
            for name in sorted(n for n in os.listdir(folder) if n.lower().endswith('.avi')):
                sentence, _, face = os.path.splitext(name)[0].partition('-video-')
                video = f'fake-{quality.split("_")[0]}-{subject}-{sentence}' + (f'-{face}' if face else '')
                face_out, voice_out = dfdc_paths(args.out, 'fake', video, args.windows > 1)
                clips.append(Clip(video=os.path.join(folder, name), face_out=face_out, voice_out=voice_out,
                                  audio=os.path.join(args.vidtimit, subject, 'audio', sentence + '.wav'),
                                  windows=args.windows))
                rows.append([video, 'fake', subject, sentence, face, quality])
                subjects.add(subject)
    if not clips:
        raise ValueError(f'--fakes {args.fakes}: no .avi files in {", ".join(qualities)}/<subject>/')
    all_subjects = sorted(n for n in os.listdir(args.vidtimit)
                          if os.path.isdir(os.path.join(args.vidtimit, n, 'video')))
    chosen = all_subjects if args.reals == 'all' else [s for s in all_subjects if s in subjects]
    if not chosen:
        raise ValueError(f'--vidtimit {args.vidtimit}: no <subject>/video/ folders for the subjects of the fakes')
    for subject in chosen:
        videos = os.path.join(args.vidtimit, subject, 'video')
        for sentence in sorted(os.listdir(videos)):
            if sentence.startswith('head') or not os.path.isdir(os.path.join(videos, sentence)):
                continue
            video = f'real-{subject}-{sentence}'
            face_out, voice_out = dfdc_paths(args.out, 'real', video, args.windows > 1)
            clips.append(Clip(video=os.path.join(videos, sentence), face_out=face_out, voice_out=voice_out,
                              audio=os.path.join(args.vidtimit, subject, 'audio', sentence + '.wav'),
                              windows=args.windows, fps=args.fps))
            rows.append([video, 'real', subject, sentence, subject, ''])
    os.makedirs(args.out, exist_ok=True)
    util.atomic_write_csv(os.path.join(args.out, 'videos.csv'),
                ['video', 'label', 'subject', 'sentence', 'face_subject', 'quality'], rows)
    return clips, 'DeepfakeTIMIT/VidTIMIT videos'


def main(argv=None):
    """Preprocess DeepfakeTIMIT and VidTIMIT; exit status 0 if anything usable exists, 1 if not, 2 for bad input."""
    return main_for(__doc__.split('\n\n')[0], add_arguments, build, argv, windows=True)


if __name__ == '__main__':
    sys.exit(main())
