"""Test VFD: score every real and fake voice-face pair and report AUC, AP and EER.

    python test_DF.py --dataroot ./Dataset/DFDC --dataset_mode DFDC --model DFD --name NAME

The architecture is read from the checkpoint (``--epoch``, default latest); plain released-format state dicts use
the command line, in ``released`` mode unless ``--encoder_compat`` says otherwise. The score of a pair is minus the
L2 distance between its voice and face embeddings (higher = more real). Results go to
``<results_dir>/<name>/<dataset folder>_<epoch>/``: ``scores.csv`` (one row per pair), ``summary.json`` and an HTML
report (``index.html``: metrics with a bootstrap interval, ROC curve, score histograms, worst-scored pairs);
``<results_dir>/<name>/index.html`` lists every test run of the experiment.
"""
import csv
import io
import json
import logging
import math
import os
import sys
import time

import numpy as np

from data import DatasetError, create_dataset
from models import CheckpointError, create_model
from options.test_options import TestOptions
from util import metrics, report, util

logger = logging.getLogger('test_DF')
BOOTSTRAP = 1000  # resamples for the AUC interval


def score_dataset(model, loader):
    """Scores of every pair in ``loader``: dict of arrays/lists (score, label, video, face_path, voice_path)."""
    model.eval()
    out = {'score': [], 'label': [], 'video': [], 'face_path': [], 'voice_path': []}
    for batch in util.progress(loader, total=loader.num_batches(), desc='scoring'):
        out['score'].append(model.score_pairs(batch['voice'], batch['face']).float().cpu().numpy())
        out['label'].append(batch['label'].numpy())
        for key in ('video', 'face_path', 'voice_path'):
            out[key].extend(batch[key])
    out['score'] = np.concatenate(out['score']).astype(np.float64)
    out['label'] = np.concatenate(out['label']).astype(int)
    return out


def write_results(folder, scored, summary):
    """scores.csv (one row per pair: video, label, score, distance, paths) and summary.json in ``folder``."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator='\n')
    writer.writerow(['video', 'label', 'score', 'distance', 'face_path', 'voice_path'])
    for i, score in enumerate(scored['score']):
        writer.writerow([scored['video'][i], int(scored['label'][i]), f'{score:.6f}', f'{-score:.6f}',
                         scored['face_path'][i], scored['voice_path'][i]])
    util.atomic_write_text(os.path.join(folder, 'scores.csv'), buffer.getvalue())
    util.atomic_write_text(os.path.join(folder, 'summary.json'), json.dumps(summary, indent=1, default=str) + '\n')


def test(opt):
    logger.info('commit %s', util.git_commit())
    util.seed_everything(opt.seed)
    util.set_deterministic(opt.deterministic)
    tag = opt.results_tag or f'{os.path.basename(os.path.normpath(opt.dataroot))}_{opt.epoch}'
    folder = os.path.join(opt.results_dir, opt.name, tag)
    util.check_writable(folder, 'the test results')  # before scoring, not after
    opt.skip_log = os.path.join(folder, 'skipped_samples.csv')
    if os.path.isfile(opt.skip_log):
        os.remove(opt.skip_log)                      # the list of this run, not of an earlier one
    loader = create_dataset(opt, phase='test', shuffle=False)
    model = create_model(opt)
    model.setup(opt)
    start = time.time()
    scored = score_dataset(model, loader)
    elapsed = time.time() - start
    summary = metrics.summarize(scored['label'], scored['score'])
    summary['auc_ci95'] = list(metrics.bootstrap_auc(scored['label'], scored['score'], n_resamples=BOOTSTRAP))
    summary['bootstrap_resamples'] = BOOTSTRAP
    meta = opt.checkpoint_meta or {}
    val = meta.get('val') or {}
    threshold = val.get('eer_threshold')
    if threshold is not None and math.isfinite(threshold):
        summary['threshold'] = threshold
        summary['threshold_source'] = 'validation EER threshold stored with the checkpoint'
        summary['accuracy'] = metrics.accuracy_at(scored['label'], scored['score'], threshold)
    else:
        summary['threshold'] = None
        summary['threshold_source'] = ('none: the checkpoint stores no validation threshold, and none is chosen on '
                                       'the test set; accuracy is not reported')
        summary['accuracy'] = None
    summary.update({
        'dataroot': os.path.abspath(opt.dataroot), 'dataset_mode': opt.dataset_mode, 'name': opt.name,
        'epoch': opt.epoch, 'checkpoint_epoch': meta.get('epoch'), 'encoder_compat': opt.encoder_compat,
        'checkpoint_format': 'vfd-checkpoint' if meta else 'plain state dict (released format)',
        'commit': util.git_commit(), 'seconds': round(elapsed, 2), 'pairs_per_second': len(scored['label']) / elapsed,
    })
    if loader.skip_log is not None and loader.skip_log.count:
        summary['skipped_samples'] = loader.skip_log.count
        print(f'{loader.skip_log.count} sample(s) left out (--skip_bad): {opt.skip_log}')
    write_results(folder, scored, summary)
    report.write_test_report(folder, scored, summary)
    report.write_results_index(os.path.join(opt.results_dir, opt.name))
    low, high = summary['auc_ci95']
    print(f'AUC {summary["auc"]:.4f} (95 % interval {low:.4f}-{high:.4f})  AP {summary["ap"]:.4f}  '
          f'EER {summary["eer"]:.4f}  ({summary["n_real"]} real, {summary["n_fake"]} fake pairs)')
    if summary['accuracy'] is not None:
        print(f'accuracy {summary["accuracy"]:.4f} at the validation threshold {threshold:.4f}')
    else:
        print('no accuracy: the checkpoint stores no validation threshold (none is chosen on the test set)')
    print(f'results: {folder}/ (index.html, summary.json, scores.csv)')
    return summary


def main(argv=None):
    return util.run_entry(TestOptions(), test, argv, errors=(DatasetError, CheckpointError, util.WriteCheckError))


if __name__ == '__main__':
    sys.exit(main())
