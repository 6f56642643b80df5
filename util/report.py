"""HTML reports of test runs: one page per run and an index of all runs of an experiment.

    <results_dir>/<name>/<tag>/index.html     metrics with a bootstrap interval, the threshold's origin, ROC curve,
                                              score histograms, the worst-scored pairs with thumbnails
    <results_dir>/<name>/index.html           one line per test run of the experiment, linking to its page
"""
import json
import os

import numpy as np
from PIL import Image, UnidentifiedImageError

from util import plots, util
from util.html import HTML


def _fmt(value, digits=4):
    return '-' if value is None or (isinstance(value, float) and not np.isfinite(value)) else f'{value:.{digits}f}'


def _thumbnail(src, dst, size):
    """A square thumbnail of an image file; False when the file cannot be read."""
    try:
        with Image.open(src) as image:
            image.convert('RGB').resize((size, size), Image.BICUBIC).save(dst)
        return True
    except (OSError, UnidentifiedImageError):
        return False


def write_test_report(folder, scored, summary, worst=6, thumb=96):
    """Write ``folder``/index.html for one test run (``scored``: the per-pair arrays of test_DF.score_dataset)."""
    labels, scores = np.asarray(scored['label']), np.asarray(scored['score'])
    page = HTML(folder, f'VFD test: {summary["name"]} on {os.path.basename(summary["dataroot"])}')
    page.add_header(f'{summary["name"]}, checkpoint {summary["epoch"]} ({summary["encoder_compat"]} encoders) on '
                    f'{summary["dataroot"]}')
    low, high = summary.get('auc_ci95') or (None, None)
    reason = summary.get('not_measurable')
    level = summary.get('level', 'frame')
    unit = 'videos' if level == 'video' else 'pairs'
    page.add_table(['metric', 'value'], [
        ['level', f'{level} level' + (f' ({summary.get("video_agg")} of the window scores of each video)'
                                      if level == 'video' else '') + f', protocol {summary.get("protocol", "sound")}'
                  + (f' (fakes per real taken from the list of fakes {summary["original_order"]})'
                     if summary.get('original_order') else '')],
        ['AUC (real = positive)', f'not measurable ({reason})' if reason else
         f'{_fmt(summary["auc"])}  (95 % bootstrap interval {_fmt(low)} - {_fmt(high)}, '
         f'{summary.get("bootstrap_resamples", 0)} resamples)'],
        ['average precision', f'not measurable ({reason})' if reason else _fmt(summary['ap'])],
        ['equal error rate', f'not measurable ({reason})' if reason else _fmt(summary['eer'])],
        ['accuracy at the threshold', _fmt(summary['accuracy'])],
        ['threshold', f'{_fmt(summary["threshold"])}: {summary["threshold_source"]}'],
        [unit, f'{summary["n_real"]} real, {summary["n_fake"]} fake'],
    ])
    levels = [(name, summary[key]) for name, key in (('frame (window)', 'frame_level'), ('video', 'video_level'))
              if summary.get(key)]
    if levels:
        page.add_header('frame level and video level')
        page.add_table(['level', 'AUC', '95 % interval', 'AP', 'EER', 'accuracy', 'real', 'fake'], [
            [name, *([f'not measurable ({part["not_measurable"]})', '-', '-', '-'] if part.get('not_measurable') else
                     [_fmt(part['auc']), f'{_fmt(part["auc_ci95"][0])} - {_fmt(part["auc_ci95"][1])}',
                      _fmt(part['ap']), _fmt(part['eer'])]),
             _fmt(part['accuracy']), part['n_real'], part['n_fake']] for name, part in levels])
    if summary.get('categories'):
        page.add_header('AUC per fake category (each against all reals)')
        page.add_table(['category', 'AUC', 'AP (fake positive)', 'fakes'],
                       [[name, _fmt(row['auc']), _fmt(row.get('ap_fake')), row['n_fake']]
                        for name, row in summary['categories'].items()])
    if summary.get('localisation'):
        found, windows = summary['localisation'], summary.get('window_level') or {}
        page.add_header('temporal localisation of the fake segments')
        page.add_table(['metric', 'value'], [
            ['windows labelled by their overlap with the fake segments',
             f'AUC {_fmt(windows.get("auc"))} ({windows.get("n_real")} real, {windows.get("n_fake")} fake windows)'],
            *[[f'AP@{k}', _fmt(v)] for k, v in found['ap'].items()],
            *[[f'AR@{k}', _fmt(v)] for k, v in found['ar'].items()],
            ['segments', f'{found["n_segments"]} fake segments in {found["n_videos"]} videos; windows of '
                         f'{found["window_seconds"]:g} s every {found["hop"]:g} s'],
            ['proposals', found['proposals']], ['metrics', found['metrics']]])
    if summary.get('robustness'):
        page.add_header('robustness: the same set under each perturbation')
        low, high = summary.get('auc_ci95') or (None, None)
        rows = [['clean', f'{_fmt(summary.get("auc"))} [{_fmt(low)}, {_fmt(high)}]', _fmt(summary.get('ap')),
                 _fmt(summary.get('eer')), '-']]
        for row in summary['robustness']:
            drop = row['auc_drop_ci95']
            rows.append([row['condition'], f'{_fmt(row["auc"])} [{_fmt(row["auc_ci95"][0])}, '
                                           f'{_fmt(row["auc_ci95"][1])}]', _fmt(row['ap']), _fmt(row['eer']),
                         f'{_fmt(row["auc_drop"])} [{_fmt(drop[0])}, {_fmt(drop[1])}]'])
        page.add_table(['condition', 'AUC [95 % interval]', 'AP', 'EER', 'clean AUC minus this [95 % paired interval]'],
                       rows)
    page.add_text('Nothing in this report was chosen on this test set: the checkpoint was picked before testing '
                  '(--epoch; "best" is the highest validation AUC), and the accuracy threshold, when there is one, '
                  'comes from validation data.')
    images = []
    if summary['n_real'] and summary['n_fake']:
        plots.roc_plot(os.path.join(page.img_dir, 'roc.png'), labels, scores, f'ROC, AUC {_fmt(summary["auc"])}')
        images.append(('images/roc.png', 'ROC curve'))
    plots.score_histograms(os.path.join(page.img_dir, 'scores.png'), labels, scores, summary['threshold'],
                           summary.get('score_meaning', 'minus the voice-face distance'))
    images.append(('images/scores.png', 'scores of real and fake pairs'))
    page.add_images([i[0] for i in images], [i[1] for i in images], width=420)
    util.mkdirs(page.img_dir)
    for title, label, order in (('fakes scored most real', 0, -1), ('reals scored most fake', 1, 1)):
        idx = np.flatnonzero(labels == label)
        idx = idx[np.argsort(scores[idx] * order, kind='stable')][:worst]
        if idx.size == 0:
            continue
        ims, txts = [], []
        for rank, i in enumerate(idx):
            rel = f'images/{"fake" if label == 0 else "real"}_worst{rank}.png'
            if _thumbnail(scored['face_path'][i], os.path.join(folder, rel), thumb):
                ims.append(rel)
                txts.append(f'{scored["video"][i]}: score {scores[i]:.3f}')
        page.add_header(f'worst-scored pairs: {title}')
        page.add_images(ims, txts, width=thumb)
    page.save()


def write_results_index(name_dir):
    """``name_dir``/index.html: every test run below it (folders holding a summary.json), newest first."""
    runs, unreadable = [], []
    for tag in sorted(os.listdir(name_dir)):
        path = os.path.join(name_dir, tag, 'summary.json')
        if tag.startswith('.') or not os.path.isfile(path):   # hidden: a run being written or moved aside
            continue
        try:
            with open(path) as handle:
                summary = json.load(handle)
            if not isinstance(summary, dict):
                raise ValueError('not a JSON object')
            runs.append((os.path.getmtime(path), tag, summary))
        except (OSError, ValueError, UnicodeDecodeError) as err:   # one damaged folder does not hide the others
            unreadable.append(f'{tag} (summary.json unreadable: {str(err).splitlines()[0][:80]})')
    page = HTML(name_dir, f'VFD test runs: {os.path.basename(os.path.normpath(name_dir))}')
    page.add_header(f'test runs of {os.path.basename(os.path.normpath(name_dir))}')
    rows = []
    shown = []
    for _, tag, s in sorted(runs, reverse=True):
        try:
            low, high = s.get('auc_ci95') or (None, None)
            rows.append([tag, s.get('dataroot'), s.get('epoch'), f'{_fmt(s.get("auc"))} [{_fmt(low)}, {_fmt(high)}]',
                         _fmt(s.get('ap')), _fmt(s.get('eer')), _fmt(s.get('accuracy')),
                         f'{s.get("n_real")} / {s.get("n_fake")}'])
            shown.append(tag)
        except (TypeError, ValueError) as err:
            unreadable.append(f'{tag} (summary.json not as test_DF.py writes it: {err})')
    page.add_table(['run', 'data', 'checkpoint', 'AUC [95 % interval]', 'AP', 'EER', 'accuracy', 'real / fake'],
                   rows)
    for tag in shown:
        page.add_link(f'{tag}: full report', f'{tag}/index.html')
    if unreadable:
        page.add_header('folders left out')
        page.add_table(['folder'], [[text] for text in unreadable])
    page.save()
