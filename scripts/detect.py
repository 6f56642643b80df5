"""Ask a trained VFD model about one video: score, verdict and a JSON line.

    python -m scripts.detect VIDEO --name NAME [--checkpoints_dir ./checkpoints] [--windows 5] [--json]

The video is preprocessed as the datasets are (prep/video.py): ``--windows`` voice windows of 3 s spread over
its audio, the frame in the middle of each, the largest face cropped by dlib's detector; each window's voice is
what the checkpoint's input recipe reads (the 2022 mel, or for journal models the power mel of the window's first
2.56 s). Every window with a face is scored by the checkpoint's score function (higher = more real: minus the
voice-face embedding distance, or their cosine for journal models) and the video's score aggregates them
(``--video_agg`` mean, median or max). The verdict compares that score with the threshold stored with the
checkpoint, the equal-error-rate threshold chosen on the validation identities during training: ``real`` at or
above it, ``fake`` below. A checkpoint without one (e.g. the authors' plain state dicts) gives the score and no
verdict. The checkpoint is ``--epoch`` (default: ``best`` when the run kept one, else ``latest``); its architecture
is read from it, and any test_DF.py option (``--gpu_ids``, ``--encoder_compat`` for plain state dicts, ...) works.

The last line printed is one JSON object (video, score, verdict, threshold, windows, ...); ``--json`` prints only
that line. Exit status: 0 scored (whatever the verdict), 2 bad arguments or checkpoint, 3 the video has no audio
track, 4 no face was found, 5 the file cannot be used (truncated, unreadable, no video track, audio too short or
silent: an RMS level below ``--silent_db``, -60 dB full scale, in every window), 130 interrupted (Ctrl-C), 143
terminated (SIGTERM).
"""
import argparse
import json
import logging
import os
import sys

if __package__ in (None, ''):
    raise SystemExit('run it from the repository root as a module: python -m scripts.detect ...')

import numpy as np
import torch

from prep.video import MAX_WINDOWS
from util.metrics import AGGREGATES
from util.util import EXIT_INTERRUPTED, EXIT_TERMINATED, Terminated, handle_sigterm, strict_json

EXIT_NO_AUDIO, EXIT_NO_FACE, EXIT_UNUSABLE, EXIT_BAD_ARGUMENTS = 3, 4, 5, 2


def parse(argv):
    """detect.py's own flags, and the rest for the test options."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0], add_help=True,
                                     epilog='Other options are passed to the test options (see test_DF.py --help).')
    parser.add_argument('video', help='the video file to check')
    parser.add_argument('--windows', type=int, default=5, help='voice windows (and frames) spread over the video')
    parser.add_argument('--video_agg', choices=sorted(AGGREGATES), default='mean',
                        help='how the window scores make the video score')
    parser.add_argument('--audio', default='', help='take the audio from this file instead of the video')
    parser.add_argument('--json', action='store_true', help='print only the JSON line')
    parser.add_argument('--trim_leading_silence', action='store_true',
                        help='drop the leading silence before the voice windows (see prep/video.py)')
    parser.add_argument('--silence_threshold', type=float, default=5e-4, help='amplitude that ends the silence')
    parser.add_argument('--silent_db', type=float, default=-60.0,
                        help='windows quieter than this RMS level (dB full scale) are silent and not scored')
    parser.add_argument('--min_seconds', type=float, default=1.0, help='shortest usable audio in seconds')
    parser.add_argument('--detector', choices=('dlib', 'none'), default='dlib', help='face detector')
    parser.add_argument('--margin', type=float, default=0.25, help='context around the detected face box')
    parser.add_argument('--face_size', type=int, default=224,
                        help='side of the face crop before the model\'s own scaling (the prep scripts\' default)')
    parser.add_argument('--upsample', type=int, default=0, help='dlib upsampling passes (smaller faces)')
    parser.add_argument('--detect_size', type=int, default=640, help='frames are scaled for detection so that their shorter side is at most this (0: as decoded)')
    args, rest = parser.parse_known_args(argv)
    return args, rest


def test_options(args, rest):
    """The test options for the checkpoint: --dataroot is the video's folder; --epoch defaults to best/latest."""
    from options.test_options import TestOptions

    rest = list(rest)
    if '--epoch' not in rest and not any(a.startswith('--epoch=') for a in rest):
        probe = argparse.ArgumentParser(add_help=False)
        probe.add_argument('--name', default='experiment_name')
        probe.add_argument('--checkpoints_dir', default='./checkpoints')
        known, _ = probe.parse_known_args(rest)
        best = os.path.join(known.checkpoints_dir, known.name, 'best_net_G_audio.pth')
        rest += ['--epoch', 'best' if os.path.isfile(best) else 'latest']
    folder = os.path.dirname(os.path.abspath(args.video))
    return TestOptions().parse(['--dataroot', folder, *rest], save=False, verbose=False)


def detect(args, opt):
    """Preprocess and score the video; returns (exit status, result dict)."""
    from data.audio import voice_array
    from data import transport
    from data.faces import image_face
    from data.inputs import journal_voice
    from models import checkpoint, load_model, losses
    from prep.video import ClipSkipped, clip_windows

    model = load_model(opt, os.path.join(opt.checkpoints_dir, opt.name), opt.epoch)  # sets the input sizes of opt
    model.setup(opt)
    model.eval()
    config = {'trim_leading_silence': args.trim_leading_silence, 'silence_threshold': args.silence_threshold,
              'silent_db': args.silent_db, 'min_seconds': args.min_seconds, 'detector': args.detector,
              'face_size': args.face_size, 'voices': ('mel', 'wav'),
              'margin': args.margin, 'upsample': args.upsample, 'detect_size': args.detect_size}
    result = {'video': os.path.abspath(args.video), 'name': opt.name, 'epoch': opt.epoch}
    try:
        windows = clip_windows(args.video, args.audio or None, windows=max(1, args.windows), config=config)
    except ClipSkipped as err:
        status = {'no_audio': EXIT_NO_AUDIO}.get(err.reason, EXIT_UNUSABLE)
        return status, {**result, 'error': err.reason, 'message': err.detail}
    voiced = [w for w in windows if not w['silent']]
    usable = [w for w in voiced if w['face'] is not None]
    if not usable:
        return EXIT_NO_FACE, {**result, 'error': 'no_face',
                              'message': f'{args.video}: no face found in any of the {len(voiced)} frames looked at'}
    carry = transport.for_config(model.config, opt)
    faces = torch.from_numpy(np.stack([image_face(w['face'], opt, carry.face_backend, carry.face_resample)
                                       for w in usable]))
    if carry.inputs == 'journal':   # the journal's power mel of the window's first 2.56 s
        voices = [journal_voice(w['wav'], 0, opt.n_mels, opt.n_frames) for w in usable]
    else:
        voices = [voice_array(w['mel'], opt.n_mels, opt.n_frames) for w in usable]
    voices = torch.from_numpy(np.stack(voices))
    scores = model.score_pairs(carry.to_encoder(voices), carry.to_encoder(faces)).float().cpu().numpy().astype(float)
    score = float(AGGREGATES[args.video_agg](scores))
    threshold, source = checkpoint.decision_threshold(model.loaded_meta)
    verdict = None if threshold is None else ('real' if score >= threshold else 'fake')
    result.update({
        'score': score, 'distance': float(losses.score_distance(model.config.score, score)),
        'score_function': model.config.score, 'verdict': verdict, 'threshold': threshold,
        'threshold_source': source if threshold is not None else 'none stored with the checkpoint: no verdict',
        'video_agg': args.video_agg, 'windows_scored': len(usable), 'windows_without_face': len(voiced) - len(usable),
        'windows_silent': len(windows) - len(voiced),
        'windows': [{'start_s': round(w['start'], 3), 'frame_s': round(w['time'], 3), 'score': s}
                    for w, s in zip(usable, scores.tolist())],
        'encoder_compat': model.config.compat,
    })
    return 0, result


def report(result, status):
    """The human-readable lines (the JSON line follows them)."""
    if 'error' in result:
        print(f'{result["error"]}: {result["message"]}', file=sys.stderr)   # the message names the file
        return
    print(f'video: {result["video"]}')
    print(f'checkpoint: {result["name"]} ({result["epoch"]}), {result["windows_scored"]} window(s) scored'
          + (f', {result["windows_without_face"]} without a face' if result['windows_without_face'] else ''))
    print('window scores: ' + ' '.join(f'{w["score"]:.3f}' for w in result['windows']))
    print(f'score {result["score"]:.4f} ({result["video_agg"]} over windows; higher = more real)')
    if result['verdict'] is None:
        print('verdict: none (the checkpoint stores no validation threshold)')
    else:
        print(f'verdict: {result["verdict"].upper()} (threshold {result["threshold"]:.4f}: {result["threshold_source"]})')


def main(argv=None):
    """Entry point: the exit statuses of the module docstring."""
    from models import MODEL_ERRORS

    logging.basicConfig(level=logging.WARNING, format='%(levelname)s %(name)s: %(message)s')
    handle_sigterm()
    args, rest = parse(sys.argv[1:] if argv is None else argv)
    if not 1 <= args.windows <= MAX_WINDOWS:
        print(f'error: --windows must lie between 1 and {MAX_WINDOWS}, got {args.windows}', file=sys.stderr)
        return EXIT_BAD_ARGUMENTS
    if not -0.5 < args.margin <= 4 or args.face_size < 16 or args.detect_size < 0:
        print(f'error: --margin must lie in (-0.5, 4] (context on each side, as a fraction of the face box), '
              f'--face_size be at least 16 and --detect_size not negative; got {args.margin}, {args.face_size}, '
              f'{args.detect_size}', file=sys.stderr)
        return EXIT_BAD_ARGUMENTS
    if not os.path.exists(args.video):
        print(f'error: {args.video}: no such file', file=sys.stderr)
        return EXIT_BAD_ARGUMENTS
    try:
        opt = test_options(args, rest)
        status, result = detect(args, opt)
    except (*MODEL_ERRORS, FileNotFoundError, ValueError) as err:
        print(f'error: {err}', file=sys.stderr)
        return EXIT_BAD_ARGUMENTS
    except Terminated:
        print('terminated (SIGTERM)', file=sys.stderr)
        return EXIT_TERMINATED
    except KeyboardInterrupt:
        print('interrupted', file=sys.stderr)
        return EXIT_INTERRUPTED
    if not args.json:
        report(result, status)
    print(json.dumps(strict_json(result), allow_nan=False))
    return status


if __name__ == '__main__':
    sys.exit(main())
