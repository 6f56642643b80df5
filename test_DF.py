"""Test VFD: score every real and fake voice-face pair and report AUC, AP and EER.

    python test_DF.py --dataroot ./Dataset/DFDC --dataset_mode DFDC --model DFD --name NAME

The architecture, the inputs and the score function are read from the checkpoint (``--epoch``, default latest);
plain released-format state dicts use the command line, in the mode their parameters show unless
``--encoder_compat`` says otherwise. The score of a pair is the checkpoint's: minus the L2 distance between its
voice and face embeddings, or their cosine (journal models); higher = more real. A video with several windows gets the
``--video_agg`` (mean, median, max) of its window scores; results are reported per window (frame level) and per
video (video level, the headline), with the AUC per fake category when the dataset has a ``categories.csv``.
``--protocol original`` reports the released evaluation instead (frame level, its sampling of fakes). Results go to
``<results_dir>/<name>/<dataset folder>_<part>_<protocol>[_<video_agg>]_<epoch>/`` (part: the ``--split_file`` part
tested or ``all``; the aggregate named when it is not the mean; ``-<8 hex digits>`` appended when that folder holds
another test's results; ``--results_tag`` names it instead): ``scores.csv`` (one row per window, the score
and the same as a distance), ``video_scores.csv``,
``summary.json`` and an HTML report (``index.html``: metrics with a bootstrap interval, ROC curve, score
histograms, worst-scored videos); ``<results_dir>/<name>/index.html`` lists every test run of the experiment.
"""
import contextlib
import copy
import hashlib
import json
import logging
import os
import re
import shutil
import sys
import time

import numpy as np

from data import DatasetError, SkipLog, create_dataset, perturb, segments, transport
from models import MODEL_ERRORS, checkpoint, load_model, losses
from options.base_options import record_model
from options.test_options import TestOptions
from util import localisation, metrics, report, util

EXIT_ONE_CLASS = 3   # the set holds one class: scores written, no AUC
logger = logging.getLogger('test_DF')
BOOTSTRAP = 1000  # resamples for the AUC interval


def score_dataset(model, loader):
    """Scores of every window in ``loader``: dict of arrays/lists (score, label, video, window, face_path,
    voice_path)."""
    model.eval()
    out = {'score': [], 'label': [], 'window': [], 'video': [], 'face_path': [], 'voice_path': []}
    for batch in util.progress(loader, total=loader.num_batches(), desc='scoring'):
        out['score'].append(model.score_pairs(batch['voice'], batch['face']).float().cpu().numpy())
        out['label'].append(batch['label'].numpy())
        out['window'].append(batch['window'].numpy())
        for key in ('video', 'face_path', 'voice_path'):
            out[key].extend(batch[key])
    for key, dtype in (('score', np.float64), ('label', int), ('window', int)):
        out[key] = np.concatenate(out[key]).astype(dtype)
    return out


def by_video(scored, how):
    """One row per video: the ``how`` (mean, median, max) of its window scores, its first window's face."""
    names, labels, scores, members = metrics.aggregate_by_video(scored['video'], scored['label'], scored['score'],
                                                                how)
    rows = [windows[0] for windows in members]
    return {'video': names, 'label': labels, 'score': scores, 'windows': [len(windows) for windows in members],
            'face_path': [scored['face_path'][i] for i in rows], 'voice_path': [scored['voice_path'][i] for i in rows]}


def write_results(folder, scored, videos, summary):
    """scores.csv (one row per window), video_scores.csv (one row per video) and summary.json in ``folder``. The
    ``distance`` column is the score as a dissimilarity (``models/losses.py: score_distance``: minus the score for
    neg_l2, one minus it for cosine)."""
    header = ['video', 'label', 'window', 'score', 'distance', 'face_path', 'voice_path']
    distances = losses.score_distance(summary['model_config']['score'], scored['score'])
    util.atomic_write_csv(
        os.path.join(folder, 'scores.csv'), header,
        ([scored['video'][i], int(scored['label'][i]), int(scored['window'][i]), f'{score:.6f}',
          f'{distances[i]:.6f}', scored['face_path'][i], scored['voice_path'][i]]
         for i, score in enumerate(scored['score'])))
    write_video_scores(os.path.join(folder, 'video_scores.csv'), videos, summary['video_agg'])
    util.atomic_write_json(os.path.join(folder, 'summary.json'), summary)


def write_video_scores(path, videos, agg):
    """One row per video (video, label, windows, its ``agg`` score) of ``by_video``'s output into the CSV ``path``."""
    util.atomic_write_csv(path, ['video', 'label', 'windows', f'score_{agg}'],
                          ([videos['video'][i], int(videos['label'][i]), int(videos['windows'][i]), f'{score:.6f}']
                           for i, score in enumerate(videos['score'])))


def results_tag(opt, identity):
    """The results folder of a test run: ``<dataset folder>_<part>_<protocol>[_<video_agg>]_<epoch>``, where part is
    the part tested (the dataset says: a ``--split_file`` part, or ``all``) and the aggregate is named when it is not
    the mean, so that runs on different parts, protocols, aggregates or checkpoints never share a folder."""
    agg = '' if opt.video_agg == 'mean' else f'_{opt.video_agg}'
    return (f'{os.path.basename(os.path.normpath(opt.dataroot))}_{identity["part"]}_{identity["protocol"]}{agg}_'
            f'{opt.epoch}')


def test_identity(opt, dataset):
    """What makes two test runs the same test: the set (its full path, not its folder's name), what the dataset
    says the test is (its part, protocol, split file: ``test_facts``), the aggregate, the size cap and the
    checkpoint named. Stored in summary.json as ``test``."""
    return {'dataroot': os.path.abspath(opt.dataroot), 'dataset_mode': opt.dataset_mode,
            'split_file': '', 'original_order': '', **dataset.test_facts(),
            'video_agg': opt.video_agg, 'max_dataset_size': opt.max_dataset_size,
            'perturb': ','.join(perturb.name(c) for c in perturb.parse(opt.perturb)),
            'checkpoints': os.path.abspath(os.path.join(opt.checkpoints_dir, opt.name)), 'epoch': opt.epoch}


def stored_identity(folder):
    """The test identity recorded in ``folder``/summary.json; for a folder written before identities were recorded,
    the fields its summary has; None when there is no readable summary."""
    try:
        with open(os.path.join(folder, 'summary.json')) as handle:
            summary = json.load(handle)
    except (OSError, ValueError):
        return None
    if not isinstance(summary, dict):
        return None
    if isinstance(summary.get('test'), dict):
        return summary['test']
    return {key: summary.get(key) for key in ('dataroot', 'video_agg', 'epoch', 'protocol')}


def same_test(stored, identity):
    """Whether a stored identity (possibly the partial one of an older folder) is the test ``identity``."""
    return stored is not None and all(identity.get(key) == value for key, value in stored.items())


class ResultsTakenError(util.WriteCheckError):
    """A results folder that holds another test's results."""


def results_folder(opt, identity):
    """The folder this test's results go to. A folder that holds another test's results is never taken over: with
    the default tag the name gets a suffix from the identity; a ``--results_tag`` folder of another test is refused
    unless ``--overwrite_results``."""
    name_dir = os.path.join(opt.results_dir, opt.name)
    recover_results(name_dir)
    tag = opt.results_tag or results_tag(opt, identity)
    folder = os.path.join(name_dir, tag)
    if not os.path.exists(folder) or not os.listdir(folder) or same_test(stored_identity(folder), identity) \
            or opt.overwrite_results:
        return folder
    if opt.results_tag:
        raise ResultsTakenError(f'{folder} holds the results of another test ({describe_test(stored_identity(folder))}'
                                f'); choose another --results_tag, or --overwrite_results to replace them')
    digest = hashlib.sha1(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:8]
    other = os.path.join(name_dir, f'{tag}-{digest}')
    logger.warning('%s holds the results of another test (%s); these go to %s', folder,
                   describe_test(stored_identity(folder)), other)
    return other


def describe_test(identity):
    """A stored test identity in words."""
    if not identity:
        return 'no readable summary.json'
    return ', '.join(f'{k} {identity[k]}' for k in ('dataroot', 'part', 'protocol', 'video_agg', 'epoch')
                     if identity.get(k) not in (None, ''))


def recover_results(name_dir):
    """Finish what a killed publication left: a results folder moved aside but not replaced comes back; moved-aside
    and unfinished folders of processes that are gone are removed."""
    if not os.path.isdir(name_dir):
        return
    for entry in os.listdir(name_dir):
        match = re.fullmatch(r'\.(.+)\.(old|tmp)-(\d+)', entry)
        if not match or util.process_alive(int(match.group(3))):
            continue
        path, final = os.path.join(name_dir, entry), os.path.join(name_dir, match.group(1))
        if match.group(2) == 'old' and not os.path.exists(final):
            os.rename(path, final)
        else:
            shutil.rmtree(path, ignore_errors=True)


def publish_results(tmp, folder):
    """Put the finished folder ``tmp`` in the place of ``folder``: the old results move aside, the new ones take
    their name, the old ones go. A kill in between leaves the old results aside, and the next test run puts them
    back (``recover_results``): never a folder that mixes two runs' files."""
    aside = os.path.join(os.path.dirname(folder), f'.{os.path.basename(folder)}.old-{os.getpid()}')
    if os.path.exists(folder):
        os.rename(folder, aside)
    os.rename(tmp, folder)
    shutil.rmtree(aside, ignore_errors=True)


def level_summary(labels, scores, threshold, categories=None):
    """Metrics of one level (frame or video): AUC with its bootstrap interval, AP, EER, accuracy at the
    validation threshold, and the AUC per fake category when ``categories`` (one per score) is given."""
    out = metrics.summarize(labels, scores)
    out['auc_ci95'] = list(metrics.bootstrap_auc(labels, scores, n_resamples=BOOTSTRAP))
    out['ap_fake_ci95'] = list(metrics.bootstrap_ap_fake(labels, scores, n_resamples=BOOTSTRAP))
    out['accuracy'] = metrics.accuracy_at(labels, scores, threshold) if threshold is not None else None
    if categories is not None:
        out['categories'] = metrics.per_category_auc(labels, scores, categories)
        for name, ap in metrics.per_category_ap(labels, scores, categories).items():
            out['categories'][name]['ap_fake'] = ap
    return out


def test(opt):
    """Score the test set with the checkpoint of ``--epoch`` and write the results; returns the summary."""
    logger.info('commit %s', util.git_commit())
    util.seed_everything(opt.seed)
    util.set_deterministic(opt.deterministic)
    model, loader = load(opt)
    identity = test_identity(opt, loader.dataset)
    folder = results_folder(opt, identity)
    util.check_writable(os.path.dirname(folder), 'the test results')  # before scoring, not after
    with staging(folder) as tmp:   # written aside, published in one move (publish_results)
        loader.attach_skip_log(SkipLog(os.path.join(tmp, 'skipped_samples.csv')))
        start = time.time()
        scored = score_dataset(model, loader)
        summary, videos = summarise(opt, model, loader, scored, time.time() - start, identity)
        extra = {'localisation': localise(loader.dataset, scored, summary),
                 'robustness': robustness(opt, model, scored, videos, summary)}
        write(opt, tmp, folder, scored, videos, summary, extra)
    print_summary(opt, summary, folder)
    if summary.get('not_measurable') and not opt.allow_one_class:
        raise OneClassError(f'the test set cannot measure AUC, AP or EER: {summary["not_measurable"]}. The scores '
                            f'are in {folder}; check --dataroot, --split_file and --phase, or pass '
                            f'--allow_one_class if scores of one class are what you want')
    return summary


def load(opt):
    """The model of ``--name`` / ``--epoch`` (it sets the input sizes of ``opt``) and the loader of the test set."""
    model = load_model(opt, os.path.join(opt.checkpoints_dir, opt.name), opt.epoch)
    model.setup(opt)
    record_model(opt, model.config, 'the checkpoint')   # test_opt.* show the sizes the model has
    loader = create_dataset(opt, opt.phase, shuffle=False, **transport.dataset_args(model.config, opt, opt.phase))
    return model, loader


@contextlib.contextmanager
def staging(folder):
    """A fresh folder beside ``folder`` for this run's files, removed at the end whatever happens."""
    tmp = os.path.join(os.path.dirname(folder), f'.{os.path.basename(folder)}.tmp-{os.getpid()}')
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def summarise(opt, model, loader, scored, elapsed, identity):
    """(summary, videos): summary.json (both levels' metrics, frame = window and video = aggregated windows, the
    headline level, the threshold from validation, where everything came from) and the per-video scores."""
    protocol = identity['protocol']
    meta = model.loaded_meta or {}
    threshold, threshold_source = checkpoint.decision_threshold(meta)
    category_of = loader.dataset.categories()
    videos = by_video(scored, opt.video_agg)
    frame = level_summary(scored['label'], scored['score'], threshold,
                          [category_of.get(v) for v in scored['video']] if category_of else None)
    video = level_summary(videos['label'], videos['score'], threshold,
                          [category_of.get(v) for v in videos['video']] if category_of else None)
    level = 'frame' if protocol == 'original' else 'video'
    headline = frame if level == 'frame' else video
    summary = {**headline, 'level': level, 'protocol': protocol, 'video_agg': opt.video_agg,
               'frame_level': frame, 'video_level': video, 'bootstrap_resamples': BOOTSTRAP,
               'n_windows': int(len(scored['label'])), 'n_videos': int(len(videos['label'])),
               'threshold': threshold,
               'threshold_source': threshold_source + ('' if threshold is not None else '; accuracy is not reported'),
               'selection': (f'checkpoint {opt.epoch!r} chosen before testing ("best" = highest validation AUC); '
                             f'threshold from validation; nothing chosen on this test set'),
               'dataroot': os.path.abspath(opt.dataroot), 'dataset_mode': opt.dataset_mode, 'name': opt.name,
               'epoch': opt.epoch, 'checkpoint_epoch': meta.get('epoch'), 'encoder_compat': model.config.compat,
               'model_config': model.config.to_dict(), 'score': model.config.score,
               'score_meaning': losses.SCORE_MEANING[model.config.score],
               'checkpoint_format': 'vfd-checkpoint' if meta else 'plain state dict (released format)',
               'split_file': identity['split_file'],
               'commit': util.git_commit(), 'seconds': round(elapsed, 2),
               'pairs_per_second': len(scored['label']) / elapsed, 'test': identity}
    if protocol == 'original':
        summary['original_order'] = ('sorted by name' if identity['original_order'] == 'sorted' else
                                     'os.listdir order of fake/, as the released code (this file system\'s order)')
    if loader.skip_log is not None and loader.skip_log.count:
        summary['skipped_samples'] = loader.skip_log.count
    if headline['not_measurable']:
        summary['not_measurable'] = headline['not_measurable']
    return summary, videos


def localise(dataset, scored, summary):
    """With the set's ``segments.json`` (scripts/prep_av1m.py): every window labelled by its overlap with the fake
    segments (``summary['window_level']``: the windows' AUC against these labels) and the fake segments localised
    from the window scores (``summary['localisation']``: AP@IoU and AR@N, util/localisation.py). Returns the files
    to write (the proposals and the true segments in the AV-Deepfake1M SDK's formats, the labelled windows), or
    None for a set without segments."""
    data = segments.load(dataset.root, dataset.store)
    if data is None:
        return None
    listed = data['videos']
    missing = sorted({v for v in scored['video'] if v not in listed})
    if missing:
        raise DatasetError(f'{os.path.join(dataset.root, segments.FILE_NAME)} does not list {len(missing)} scored '
                           f'video(s), e.g. {missing[0]}: it was written for another preparation of the set')
    distance = losses.score_distance(summary['model_config']['score'], scored['score'])
    labels, rows, windows = [], [], {}
    for i, video in enumerate(scored['video']):
        info = listed[video]
        start, end = segments.window_span(int(scored['window'][i]), data['hop'], data['window_seconds'],
                                          info['duration'])
        label, seconds, fraction = localisation.window_label(start, end, info['fake_segments'],
                                                             data.get('min_overlap', 0.0))
        labels.append(label)
        rows.append([video, int(scored['window'][i]), f'{start:.3f}', f'{end:.3f}', label, f'{seconds:.3f}',
                     f'{fraction:.4f}', f'{scored["score"][i]:.6f}'])
        spans, values = windows.setdefault(video, ([], []))
        spans.append((start, end))
        values.append(float(distance[i]))
    summary['window_level'] = level_summary(np.asarray(labels), scored['score'], None)
    proposals = localisation.propose_all(windows)
    truths = {video: listed[video]['fake_segments'] for video in windows}
    found = localisation.ap_ar(proposals, truths)
    summary['localisation'] = {
        'ap': {f'{k:g}': v for k, v in found['ap'].items()}, 'ar': {str(k): v for k, v in found['ar'].items()},
        'n_videos': len(truths), 'n_segments': sum(len(t) for t in truths.values()),
        'hop': data['hop'], 'window_seconds': data['window_seconds'],
        'proposals': f'mean window distance per {localisation.STEP:g} s, runs above the set\'s deciles, confidence '
                     f'= mean inside minus mean outside, at most {localisation.MAX_PROPOSALS} per video',
        'metrics': 'AP@IoU and AR@N as avdeepfake1m.evaluation.ap_ar_1d (0.0.4) computes them'}
    return {'proposals': {listed[v]['file']: p for v, p in proposals.items()},
            'truth': [{'file': listed[v]['file'], 'fake_segments': truths[v]} for v in windows],
            'windows': rows}


def robustness(opt, model, clean, clean_videos, summary):
    """Score the set again under each ``--perturb`` condition (data/perturb.py); ``summary['robustness']`` gets one
    row per condition at the headline level (AUC with its interval, AP, EER, the AUC lost against the clean set with
    a paired bootstrap interval). Returns {condition: per-video scores} to write, or None without --perturb."""
    conditions = perturb.parse(opt.perturb)
    if not conditions:
        return None
    frame_level = summary['level'] == 'frame'
    base = clean if frame_level else clean_videos
    rows, written = [], {}
    for condition in conditions:
        name = perturb.name(condition)
        logger.info('robustness: scoring under %s', name)
        condition_opt = copy.copy(opt)
        condition_opt.perturb_condition = condition
        loader = create_dataset(condition_opt, opt.phase, shuffle=False,
                                **transport.dataset_args(model.config, opt, opt.phase))
        try:
            scored = score_dataset(model, loader)
        finally:
            loader.shutdown()
        videos = by_video(scored, opt.video_agg)
        other = scored if frame_level else videos
        if list(other['video']) != list(base['video']) or not np.array_equal(other['label'], base['label']):
            raise RuntimeError(f'the set scored under {name} is not the set scored clean')
        part = level_summary(other['label'], other['score'], summary['threshold'])
        drop = metrics.bootstrap_auc_drop(base['label'], base['score'], other['score'], n_resamples=BOOTSTRAP)
        rows.append({'condition': name, **{k: part[k] for k in ('auc', 'auc_ci95', 'ap', 'eer', 'accuracy', 'n_real',
                                                                'n_fake', 'not_measurable')},
                     'auc_drop': (summary['auc'] - part['auc']) if not part['not_measurable'] else None,
                     'auc_drop_ci95': list(drop)})
        written[name] = videos
    summary['robustness'] = rows
    return written


def write(opt, tmp, folder, scored, videos, summary, extra=None):
    """The scores, the summary and the page into ``tmp``, then ``tmp`` published as ``folder`` and the index of the
    experiment's test runs updated. A disk that fills up costs the page, not the numbers."""
    try:
        write_results(tmp, scored, videos, summary)
        write_extra(tmp, extra or {}, summary)
        report.write_test_report(tmp, scored if summary['level'] == 'frame' else videos, summary)
    except OSError as err:
        written = [n for n in ('scores.csv', 'video_scores.csv', 'summary.json', 'index.html')
                   if os.path.isfile(os.path.join(tmp, n))]
        if 'scores.csv' in written:   # this run's scores take the place of the old results, the page missing
            publish_results(tmp, folder)
        raise util.WriteCheckError(f'could not write the results to {folder}: {err.strerror or err}'
                                   + (f'; written before that: {", ".join(written)}' if written else '')) from err
    publish_results(tmp, folder)
    try:
        report.write_results_index(os.path.join(opt.results_dir, opt.name))
    except OSError as err:
        logger.warning('the index of the test runs was not updated: %s', err.strerror or err)


def write_extra(folder, extra, summary):
    """The localisation files (``windows.csv``: every window with its span, segment label and score;
    ``proposals.json`` and ``segments_truth.json`` in the formats of the AV-Deepfake1M SDK, so that its
    ``ap_ar_1d(proposals.json, segments_truth.json, 'file', 'fake_segments', 1, ...)`` can check the figures) and the
    robustness files (``robustness.csv``, ``perturbed/<condition>.csv``: the per-video scores)."""
    found = extra.get('localisation')
    if found:
        util.atomic_write_csv(os.path.join(folder, 'windows.csv'),
                              ['video', 'window', 'start', 'end', 'segment_label', 'overlap', 'fraction', 'score'],
                              found['windows'])
        util.atomic_write_json(os.path.join(folder, 'proposals.json'), found['proposals'])
        util.atomic_write_json(os.path.join(folder, 'segments_truth.json'), found['truth'])
    perturbed = extra.get('robustness')
    if perturbed:
        util.mkdirs(os.path.join(folder, 'perturbed'))
        for name, videos in perturbed.items():
            write_video_scores(os.path.join(folder, 'perturbed', f'{name.replace(":", "-")}.csv'), videos,
                               summary['video_agg'])
        util.atomic_write_csv(os.path.join(folder, 'robustness.csv'),
                              ['condition', 'auc', 'auc_low', 'auc_high', 'ap', 'eer', 'auc_drop', 'drop_low',
                               'drop_high'],
                              [[row['condition'], _num(row['auc']), *map(_num, row['auc_ci95']),
                                _num(row['ap']), _num(row['eer']), _num(row['auc_drop']),
                                *map(_num, row['auc_drop_ci95'])] for row in summary['robustness']])


def _num(value):
    return '' if value is None or not np.isfinite(value) else f'{value:.4f}'


def print_summary(opt, summary, folder):
    """The figures on the console: each level's AUC with its interval, AP and EER, per category, the accuracy at
    the validation threshold, where the results are."""
    protocol, level = summary['protocol'], summary['level']
    if summary.get('skipped_samples'):
        print(f'{summary["skipped_samples"]} sample(s) left out (--skip_bad): '
              f'{os.path.join(folder, "skipped_samples.csv")}')
    for name, unit in (('frame', 'windows'), ('video', 'videos')):
        part = summary[f'{name}_level']
        if name == 'video' and protocol == 'original':
            continue
        low, high = part['auc_ci95']
        mark = '  <- headline' if name == level and protocol != 'original' else ''
        what = f'{name}-level{f" ({opt.video_agg} over windows)" if name == "video" else ""}'
        if part['not_measurable']:
            print(f'{what}: AUC, AP and EER not measurable ({part["not_measurable"]}){mark}')
            continue
        print(f'{what}: AUC {part["auc"]:.4f} (95 % interval {low:.4f}-{high:.4f})  AP {part["ap"]:.4f}  '
              f'EER {part["eer"]:.4f}  ({part["n_real"]} real, {part["n_fake"]} fake {unit}){mark}')
    for category, row in (summary[f'{level}_level'].get('categories') or {}).items():
        print(f'  {category}: AUC {row["auc"]:.4f}, AP (fake positive) {_num(row.get("ap_fake")) or "-"} against the '
              f'reals ({row["n_fake"]} fakes)')
    if summary.get('window_level'):
        part = summary['window_level']
        if not part['not_measurable']:
            print(f'windows labelled by their fake segments: AUC {part["auc"]:.4f} ({part["n_real"]} real, '
                  f'{part["n_fake"]} fake windows)')
    if summary.get('localisation'):
        found = summary['localisation']
        print('localisation: ' + '  '.join(f'AP@{k} {_num(v) or "-"}' for k, v in found['ap'].items()) + '  '
              + '  '.join(f'AR@{k} {_num(v) or "-"}' for k, v in found['ar'].items())
              + f'  ({found["n_segments"]} fake segments in {found["n_videos"]} videos)')
    for row in summary.get('robustness') or ():
        if row['not_measurable']:
            print(f'{row["condition"]}: not measurable ({row["not_measurable"]})')
            continue
        low, high = row['auc_ci95']
        print(f'perturbed {row["condition"]}: AUC {row["auc"]:.4f} (95 % interval {low:.4f}-{high:.4f}); clean AUC '
              f'minus this {row["auc_drop"]:+.4f} (95 % paired interval {row["auc_drop_ci95"][0]:+.4f} to '
              f'{row["auc_drop_ci95"][1]:+.4f})')
    if protocol == 'original':
        print(f'protocol original: frame-level, the released sampling of fakes per real, fakes in '
              f'{summary["original_order"]}')
    if summary['threshold'] is not None:
        print(f'accuracy {summary["accuracy"]:.4f} at the threshold {summary["threshold"]:.4f} '
              f'({summary["threshold_source"]})')
    else:
        print('no accuracy: the checkpoint stores no validation threshold (none is chosen on the test set)')
    print(f'results: {folder}/ (index.html, summary.json, scores.csv, video_scores.csv)')


class OneClassError(RuntimeError):
    """A test set of one class: nothing that ranks reals against fakes can be measured."""


def main(argv=None):
    """Entry point: parse the options, test; 0 on success, 2 with one error line for the user's problems."""
    return util.run_entry(TestOptions(), test, argv, errors=(DatasetError, util.WriteCheckError, *MODEL_ERRORS),
                          status={OneClassError: EXIT_ONE_CLASS})


if __name__ == '__main__':
    sys.exit(main())
