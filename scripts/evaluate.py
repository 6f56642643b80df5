"""Test one checkpoint on several sets and write the cross-dataset table.

    python -m scripts.evaluate --name NAME --sets favc=Dataset/FakeAVCeleb_trim,av1m=Dataset/AV1M_val
    python -m scripts.evaluate --name NAME --sets favc=D1,dfdc=D2 --epoch best --perturb jpeg:50,snr:10

Each ``KEY=FOLDER`` of ``--sets`` is a prepared set in the DFDC layout; test_DF.py tests it (video level, the
mean of the window scores, the sound protocol) into ``<results_dir>/<name>/eval-<key>-<epoch>/``. Options this
script does not know (``--gpu_ids``, ``--batch_size``, ``--num_threads``, ``--perturb``, ...) go to every test.
The keys name the sets in the table: favc (FakeAVCeleb), av1m (AV-Deepfake1M), lavdf (LAV-DF), dfdc (DFDC),
timit (DeepfakeTIMIT), avlips (AVLips); any other key is printed as it is.

It writes ``<results_dir>/<name>/table.md`` and ``table.html``:

* the row to paste into a cross-dataset table of detectors trained on real videos only: AUC and AP (in %) per set
  and their average over the sets;
* per set: AUC and AP with their 95 % bootstrap intervals, EER, the numbers of real and fake videos, and the protocol of
  the cell (level, aggregate, split, whether the leading silence was trimmed, as the set's prep_options.json says);
* the AUC and AP per category (FakeAVCeleb's fake trees, AV-Deepfake1M's modify_type) where a set has categories;
* temporal localisation (AP@IoU, AR@N) for sets with fake segments (scripts/prep_av1m.py);
* robustness rows when ``--perturb`` is given.

FakeAVCeleb's fake audio starts with a silence that gives the fakes away; published tables of this kind test on
audio with the leading silence trimmed (``scripts/prep_fakeavceleb.py --trim_leading_silence``). A FakeAVCeleb set
prepared without it is tested all the same and its cell says so. Exit status: 0 when every set was tested, 1 when
some were not (their rows say why), 2 for bad arguments.
"""
import argparse
import io
import json
import math
import os
import sys
from contextlib import redirect_stderr

if __package__ in (None, ''):
    raise SystemExit('run it from the repository root as a module: python -m scripts.evaluate ...')

import test_DF
from util import runs, util
from util.html import HTML

SET_NAMES = {'favc': 'FakeAVCeleb', 'av1m': 'AV-Deepfake1M', 'lavdf': 'LAV-DF', 'dfdc': 'DFDC',
             'timit': 'DeepfakeTIMIT', 'avlips': 'AVLips'}
NEEDS_TRIM = {'favc'}


def parse_sets(text):
    """[(key, folder), ...] of ``--sets KEY=FOLDER,...``; ValueError for anything else."""
    out = []
    for part in (p.strip() for p in text.split(',') if p.strip()):
        key, sep, folder = part.partition('=')
        key, folder = key.strip(), folder.strip()
        if not sep or not key or not folder:
            raise ValueError(f'--sets {part!r}: write each set as KEY=FOLDER, e.g. favc=Dataset/FakeAVCeleb')
        if not runs.is_plain_name(key) or not key.replace('-', '').replace('_', '').isalnum():
            raise ValueError(f'--sets {part!r}: the key must be letters, digits, - or _ (it names a folder)')
        if key in (k for k, _ in out):
            raise ValueError(f'--sets: the key {key} is given twice')
        out.append((key, folder))
    if not out:
        raise ValueError('--sets: name at least one set, e.g. favc=Dataset/FakeAVCeleb')
    return out


def trimming(folder):
    """(trimmed: True, False or None when unknown, how we know) from the set's prep_options.json."""
    path = os.path.join(folder, 'prep_options.json')
    try:
        with open(path) as handle:
            options = json.load(handle)
        return bool(options.get('trim_leading_silence')), 'prep_options.json'
    except FileNotFoundError:
        return None, 'no prep_options.json'
    except (OSError, ValueError, AttributeError):
        return None, 'prep_options.json unreadable'


def protocol_text(key, folder, summary):
    """The protocol of one cell, in words."""
    trimmed, source = trimming(folder)
    trim = {True: 'leading silence trimmed', False: 'leading silence not trimmed',
            None: f'trimming unknown ({source})'}[trimmed]
    if key in NEEDS_TRIM and trimmed is not True:
        trim += ': its fakes\' leading silence can give them away, not comparable with trimmed results'
    level = summary.get('level', 'video')
    agg = f', {summary.get("video_agg", "mean")} of the window scores' if level == 'video' else ''
    part = (summary.get('test') or {}).get('part', 'all')
    return f'{level} level{agg}, protocol {summary.get("protocol")}, part {part}, {trim}'


def _pct(value):
    return '-' if value is None or not isinstance(value, (int, float)) or not math.isfinite(value) \
        else f'{100 * value:.1f}'


def _fmt(value):
    return '-' if value is None or not isinstance(value, (int, float)) or not math.isfinite(value) \
        else f'{value:.4f}'


def test_set(args, key, folder, extra):
    """Run test_DF.py on one set; (summary or None, error text)."""
    tag = f'eval-{key}-{args.epoch}'
    argv = ['--dataroot', folder, '--dataset_mode', 'DFDC', '--model', 'DFD', '--name', args.name,
            '--epoch', args.epoch, '--results_dir', args.results_dir, '--checkpoints_dir', args.checkpoints_dir,
            '--results_tag', tag, '--overwrite_results', *extra]
    print(f'== {SET_NAMES.get(key, key)} ({key}): {folder}', flush=True)
    errors = io.StringIO()
    with redirect_stderr(errors):
        try:
            status = test_DF.main(argv)
        except SystemExit as exc:   # options refused by test_DF.py's parser
            status = exc.code if isinstance(exc.code, int) else 2
            print(f'error: {exc.code}' if not isinstance(exc.code, int) else '', file=sys.stderr)
    sys.stderr.write(errors.getvalue())
    if status not in (0, test_DF.EXIT_ONE_CLASS):
        lines = [line for line in errors.getvalue().splitlines() if line.startswith('error:')]
        return None, (lines[-1][len('error:'):].strip() if lines else f'test_DF.py exited with {status}')
    path = os.path.join(args.results_dir, args.name, tag, 'summary.json')
    with open(path) as handle:
        return json.load(handle), ''


def table_rows(args, results):
    """The sections of the table as (title, header, rows, note) tuples."""
    tested = [(key, folder, s) for key, folder, s, _ in results if s is not None]
    measured = [s for _, _, s in tested if not s.get('not_measurable')]
    avg_auc = sum(s['auc'] for s in measured) / len(measured) if measured else None
    avg_ap = sum(s['ap_fake'] for s in measured) / len(measured) if measured else None
    names = [SET_NAMES.get(key, key) for key, _, _, _ in results]
    row = [f'VFD ({args.name}, {args.epoch})']
    for key, folder, s, error in results:
        row += ['-', '-'] if s is None or s.get('not_measurable') else [_pct(s['auc']), _pct(s['ap_fake'])]
    row += [_pct(avg_auc), _pct(avg_ap)]
    sections = [('the row (AUC and AP in %, video level; AP with fake as the positive class)',
                 ['Method', *[f'{n} {m}' for n in names for m in ('AUC', 'AP')], 'Avg AUC', 'Avg AP'], [row],
                 f'The average is over the {len(measured)} set(s) with a measurable AUC.')]
    detail = []
    for key, folder, s, error in results:
        if s is None:
            detail.append([SET_NAMES.get(key, key), f'not tested: {error}', '-', '-', '-', '-', folder])
            continue
        low, high = s.get('auc_ci95') or (None, None)
        ap_low, ap_high = s.get('ap_fake_ci95') or (None, None)
        detail.append([SET_NAMES.get(key, key),
                       f'{_fmt(s.get("auc"))} [{_fmt(low)}, {_fmt(high)}]' if not s.get('not_measurable')
                       else f'not measurable ({s["not_measurable"]})',
                       f'{_fmt(s.get("ap_fake"))} [{_fmt(ap_low)}, {_fmt(ap_high)}]', _fmt(s.get('ap')),
                       _fmt(s.get('eer')),
                       f'{s.get("n_real")} / {s.get("n_fake")}',
                       f'{folder}: {protocol_text(key, folder, s)}'])
    sections.append(('per set', ['set', 'AUC [95 % interval]', 'AP (fake positive) [95 % interval]',
                                 'AP (real positive)', 'EER', 'real / fake videos', 'protocol'],
                     detail, ''))
    categories = [[SET_NAMES.get(key, key), name, _fmt(c['auc']), _fmt(c.get('ap_fake')), c['n_fake']]
                  for key, _, s in tested for name, c in ((s.get('video_level') or {}).get('categories') or {}).items()]
    if categories:
        sections.append(('AUC per category (the fakes of each category against all reals of the set)',
                         ['set', 'category', 'AUC', 'AP (fake positive)', 'fakes'], categories, ''))
    local = [(key, s) for key, _, s in tested if s.get('localisation')]
    if local:
        first = local[0][1]['localisation']
        sections.append(('temporal localisation (the AV-Deepfake1M protocol)',
                         ['set', 'window AUC', *[f'AP@{k}' for k in first['ap']], *[f'AR@{k}' for k in first['ar']]],
                         [[SET_NAMES.get(key, key), _fmt((s.get('window_level') or {}).get('auc')),
                           *[_fmt(v) for v in s['localisation']['ap'].values()],
                           *[_fmt(v) for v in s['localisation']['ar'].values()]] for key, s in local],
                         first['proposals'] + '; ' + first['metrics'] + '.'))
    robust = [[SET_NAMES.get(key, key), r['condition'], _fmt(r['auc']), _fmt(r['auc_drop']),
               f'[{_fmt(r["auc_drop_ci95"][0])}, {_fmt(r["auc_drop_ci95"][1])}]']
              for key, _, s in tested for r in s.get('robustness') or ()]
    if robust:
        sections.append(('robustness', ['set', 'condition', 'AUC', 'clean AUC minus this', '95 % paired interval'],
                         robust, ''))
    return sections


def write_table(args, results):
    """table.md and table.html in <results_dir>/<name>/; returns the path of table.md."""
    folder = os.path.join(args.results_dir, args.name)
    sections = table_rows(args, results)
    lines = [f'# VFD cross-dataset table: {args.name}, checkpoint {args.epoch}', '',
             'Written by scripts/evaluate.py; each set\'s full report is in its eval-<key>-<epoch>/ folder.', '']
    for title, header, rows, note in sections:
        lines += [f'## {title}', '', '| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
        lines += ['| ' + ' | '.join(str(c).replace('|', '/') for c in row) + ' |' for row in rows]
        lines += ([''] + [note] if note else []) + ['']
    path = os.path.join(folder, 'table.md')
    util.atomic_write_text(path, '\n'.join(lines))
    page = HTML(folder, f'VFD cross-dataset table: {args.name}', filename='table.html')
    page.add_header(f'{args.name}, checkpoint {args.epoch}')
    for title, header, rows, note in sections:
        page.add_header(title)
        page.add_table(header, rows)
        if note:
            page.add_text(note)
    page.save()
    return path


def main(argv=None):
    """Test the checkpoint on every set and write the table; see the module docstring for the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter,
                                     epilog='Any other option goes to test_DF.py for every set.')
    parser.add_argument('--name', required=True, help='the experiment (checkpoints/<name>)')
    parser.add_argument('--sets', required=True, help='KEY=FOLDER,... the prepared sets to test')
    parser.add_argument('--epoch', default='latest', help='the checkpoint to test (latest, best or a number)')
    parser.add_argument('--checkpoints_dir', default='./checkpoints', help='where the experiment folder is')
    parser.add_argument('--results_dir', default='./results', help='results go to <results_dir>/<name>/')
    args, extra = parser.parse_known_args(argv)
    try:
        sets = parse_sets(args.sets)
        runs.check_name(args.name)
    except ValueError as err:
        parser.error(str(err))
    forbidden = [a for a in extra if a.split('=')[0] in ('--dataroot', '--results_tag', '--dataset_mode')]
    if forbidden:
        parser.error(f'{forbidden[0]} is set per set by this script; give the sets with --sets')
    missing = [folder for _, folder in sets if not os.path.isdir(folder)]
    if missing:
        parser.error(f'--sets: {missing[0]} is not a folder')
    results = []
    for key, folder in sets:
        summary, error = test_set(args, key, folder, extra)
        results.append((key, folder, summary, error))
    path = write_table(args, results)
    print(f'table: {path} (and table.html beside it)')
    print(open(path).read())
    return 0 if all(s is not None for _, _, s, _ in results) else 1


if __name__ == '__main__':
    sys.exit(main())
