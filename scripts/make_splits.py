"""Identity-disjoint train / validation / test lists for a deepfake dataset in the DFDC layout.

    python -m scripts.make_splits --dataroot Dataset/FakeAVCeleb_full --out splits/fakeavceleb.json
    python train_DF.py --dataset_mode DFDC --dataroot Dataset/FakeAVCeleb_full --split_file splits/fakeavceleb.json ...
    python test_DF.py --dataroot Dataset/FakeAVCeleb_full --split_file splits/fakeavceleb.json ...   # the test part

The identities of each video come from the side files that the prep scripts write in the dataroot:
``categories.csv`` (FakeAVCeleb: source, target1, target2; the sample data: face_identity, voice_identity) or
``videos.csv`` (DeepfakeTIMIT: subject, face_subject; DFDC, which has no identity labels: the real video a fake was
made from, ``original``, so that a fake and its source never fall into different splits). ``--identity_columns``
names other columns. The identities are shuffled with ``--seed`` and dealt out by ``--ratios`` (train, val, test),
those linked by a video (the two people of a face swap) one after the other, so that a cut between two parts rarely
separates them; a cut inside such a group moves to the group's edge when that changes the part sizes little. A
video goes to the split that holds all of its identities, and a video whose identities still fall into two splits
(a face swap between a training and a test identity, say) is left out and listed under ``dropped``, so that no
identity appears in two splits. The JSON holds the video lists (``train``, ``val``, ``test``), the identities of
each split, the dropped videos and how the file was made.
"""
import argparse
import collections
import csv
import json
import os
import sys

import numpy as np

if __package__ in (None, ''):
    raise SystemExit('run it from the repository root as a module: python -m scripts.make_splits ...')

from data.base_dataset import is_image
from util import util

IDENTITY_COLUMNS = ('face_identity', 'voice_identity', 'source', 'target1', 'target2', 'subject', 'face_subject',
                    'original')
PARTS = ('train', 'val', 'test')


def layout_videos(root):
    """{video: label} of the DFDC layout under ``root`` (one file or one folder of windows per video)."""
    videos = {}
    for folder, label in (('real', 1), ('fake', 0)):
        path = os.path.join(root, folder)
        if not os.path.isdir(path):
            raise ValueError(f'{path} is missing; expected the DFDC layout (real/, fake/, audio_feat/)')
        for entry in os.listdir(path):
            if os.path.isdir(os.path.join(path, entry)):
                videos[entry] = label
            elif is_image(entry):
                videos[os.path.splitext(entry)[0]] = label
    if not videos:
        raise ValueError(f'no videos under {root}/real and {root}/fake')
    return videos


def video_identities(root, videos, columns=None):
    """{video: set of identities} from categories.csv or videos.csv in ``root``; also the columns used."""
    for name in ('categories.csv', 'videos.csv'):
        path = os.path.join(root, name)
        if not os.path.isfile(path):
            continue
        with open(path, newline='') as handle:
            reader = csv.DictReader(handle)
            rows = list(reader)
            fields = reader.fieldnames or []
        use = [c for c in (columns or IDENTITY_COLUMNS) if c in fields]
        if not use:
            raise ValueError(f'{path} has none of the identity columns {", ".join(columns or IDENTITY_COLUMNS)}')
        out = {}
        for row in rows:
            ids = {row[c].strip() for c in use if row.get(c) and row[c].strip() not in ('', '-')}
            if 'original' in use and not row.get('original'):
                ids.add(row['video'])               # DFDC: a real video is its own group
            out[row['video']] = ids
        missing = sorted(v for v in videos if not out.get(v))
        if missing:
            raise ValueError(f'{path}: {len(missing)} video(s) of the layout have no identity there, e.g. '
                             f'{", ".join(missing[:5])}')
        return {v: out[v] for v in videos}, use
    raise ValueError(f'{root} holds neither categories.csv nor videos.csv: the identities of the videos are unknown '
                     f'(the scripts/prep_*.py commands write them)')


def coverage(split, videos, categories, ratios):
    """How many (part, class or category) cells a split fills: each part with a share > 0 should hold reals and
    fakes of every category (plain fakes where there are no categories); returns (filled, wanted, what is missing)."""
    kinds = sorted({categories.get(v, 'fake') for v, label in videos.items() if label == 0})
    wanted, filled, missing = 0, 0, []
    for part, ratio in zip(PARTS, ratios):
        if ratio <= 0:
            continue
        held = {'real' if videos[v] == 1 else categories.get(v, 'fake') for v in split[part]}
        for kind in ['real', *kinds]:
            wanted += 1
            if kind in held:
                filled += 1
            else:
                missing.append(f'{part}: {kind}')
    return filled, wanted, missing


def stratified_splits(videos, identities, ratios, seed, categories, tries=200):
    """The split of the first of ``tries`` identity shuffles (seeds ``seed``, ``seed + 1``, ...) whose every part
    holds reals and fakes of every category, or else the one that fills the most of those cells; its ``made_by``
    says which seed and what is still missing."""
    best, groups = None, linked_groups(identities)
    for attempt in range(tries):
        split = make_splits(videos, identities, ratios, seed + attempt, groups)
        filled, wanted, missing = coverage(split, videos, categories, ratios)
        if best is None or filled > best[0]:
            best = (filled, attempt, split, missing)
        if filled == wanted:
            break
    filled, attempt, split, missing = best
    split['stratified'] = {'seed_used': seed + attempt, 'missing': missing}
    return split


def linked_groups(identities):
    """The identities in groups that videos link (a face swap links its two people; union-find over the
    videos' identity sets); each group sorted, the groups sorted by their first name."""
    parent = {}

    def root(x):
        while parent.setdefault(x, x) != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for ids in identities.values():
        first, *rest = sorted(ids)
        parent.setdefault(first, first)
        for other in rest:
            parent[root(other)] = root(first)
    groups = collections.defaultdict(list)
    for name in sorted(parent):
        groups[root(name)].append(name)
    return sorted(groups.values())


def snap(cut, boundaries, tolerance):
    """``cut`` moved to the nearest group boundary when that is at most ``tolerance`` identities away."""
    nearest = min(boundaries, key=lambda b: (abs(b - cut), b))
    return nearest if abs(nearest - cut) <= tolerance else cut


def make_splits(videos, identities, ratios, seed, groups=None):
    """Deal the identities out by ``ratios`` and place each video; returns the split dictionary (``groups``:
    ``linked_groups(identities)`` when the caller has it already).

    The identities go out group by group (``linked_groups`` in a shuffled order, each group's identities shuffled),
    and a cut that falls inside a group moves to the group's nearer edge when that shifts it by at most half of the
    smaller of the two parts it separates: videos that link identities then stay whole instead of being dropped.
    """
    rng = np.random.default_rng(seed)
    groups = groups or linked_groups(identities)
    order, boundaries = [], [0]
    for g in rng.permutation(len(groups)):
        order += [groups[g][i] for i in rng.permutation(len(groups[g]))]
        boundaries.append(len(order))
    counts = [int(round(r * len(order))) for r in ratios[:2]]
    counts = [max(1, c) if r > 0 else 0 for c, r in zip(counts, ratios[:2])]
    cuts = [counts[0], counts[0] + counts[1]]
    sizes = [counts[0], counts[1], len(order) - cuts[1]]
    snapped = [0, snap(cuts[0], boundaries, min(sizes[0], sizes[1]) // 2),
               snap(cuts[1], boundaries, min(sizes[1], sizes[2]) // 2), len(order)]
    bounds = [0, *cuts, len(order)]
    if all(hi > lo or r <= 0 for lo, hi, r in zip(snapped, snapped[1:], ratios)):   # no part emptied by snapping
        bounds = snapped
    if bounds[2] >= len(order) and ratios[2] > 0:
        raise ValueError(f'{len(order)} identities are too few for the ratios {ratios}')
    part_of = {}
    for part, (lo, hi) in zip(PARTS, zip(bounds[:-1], bounds[1:])):
        for identity in order[lo:hi]:
            part_of[identity] = part
    split = {part: [] for part in PARTS}
    dropped = []
    for video in sorted(videos):
        parts = {part_of[i] for i in identities[video]}
        if len(parts) == 1:
            split[parts.pop()].append(video)
        else:
            dropped.append({'video': video, 'identities': sorted(identities[video]), 'parts': sorted(parts)})
    split['identities'] = {part: sorted(i for i, p in part_of.items() if p == part) for part in PARTS}
    split['dropped'] = dropped
    return split


def out_refusal(out, dataroot):
    """Why ``--out`` must not be written (None when it may): a folder, a file inside the dataset folder, or an
    existing file that is not a split this script wrote (the dataset's categories.csv, a results file ...)."""
    if os.path.isdir(out):
        return f'--out {out} is a folder; name the JSON file to write'
    root = os.path.realpath(dataroot)
    if os.path.commonpath([os.path.realpath(out), root]) == root:
        return (f'--out {out} lies inside the dataset folder {dataroot}; write the split next to it (a file in the '
                f'set could be taken for data)')
    if not os.path.exists(out):
        return None
    try:
        with open(out) as handle:
            made = json.load(handle).get('made_by')
        if isinstance(made, dict):
            return None
    except (OSError, ValueError, AttributeError, UnicodeDecodeError):
        pass
    return f'--out {out} exists and is not a split written by this script; choose another file, or --overwrite'


def main(argv=None):
    """Write the split JSON and print the counts of each part (reals, fakes, fakes per category); returns 0, or 2
    when the dataroot does not fit or a part could not measure anything (no real or no fake; --allow_empty)."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument('--dataroot', required=True, help='a dataset in the DFDC layout with its side files')
    parser.add_argument('--out', required=True, help='the JSON file to write')
    parser.add_argument('--ratios', type=float, nargs=3, default=(0.7, 0.1, 0.2), metavar=('TRAIN', 'VAL', 'TEST'),
                        help='shares of the identities for train, validation and test')
    parser.add_argument('--seed', type=int, default=20, help='seed of the identity shuffle')
    parser.add_argument('--identity_columns', default='',
                        help=f'comma-separated columns that hold identities (default: those of '
                             f'{", ".join(IDENTITY_COLUMNS)} present)')
    parser.add_argument('--stratify', choices=('none', 'category'), default='none',
                        help='category: of up to 200 identity shuffles (--seed, --seed + 1, ...) take the first that '
                             'puts reals and fakes of every category into every part, or the one closest to it, and '
                             'say what is missing')
    parser.add_argument('--allow_empty', action='store_true',
                        help='write the split even when a part with a non-zero ratio holds no real or no fake')
    parser.add_argument('--overwrite', action='store_true',
                        help='replace an --out file that is not a split this script wrote (a split it wrote is '
                             'always replaced)')
    args = parser.parse_args(argv)
    if any(r < 0 for r in args.ratios) or not abs(sum(args.ratios) - 1) < 1e-6:
        parser.error(f'--ratios must be non-negative and add up to 1, got {args.ratios}')
    refusal = out_refusal(args.out, args.dataroot)
    if refusal and not args.overwrite:
        print(f'error: {refusal}', file=sys.stderr)
        return 2
    try:
        videos = layout_videos(args.dataroot)
        columns = [c.strip() for c in args.identity_columns.split(',') if c.strip()] or None
        identities, used = video_identities(args.dataroot, videos, columns)
        categories = video_categories(args.dataroot)
        if args.stratify == 'category':
            split = stratified_splits(videos, identities, list(args.ratios), args.seed, categories)
        else:
            split = make_splits(videos, identities, list(args.ratios), args.seed)
    except (OSError, ValueError) as err:
        print(f'error: {err}', file=sys.stderr)
        return 2
    split['made_by'] = {'dataroot': os.path.abspath(args.dataroot), 'identity_columns': used,
                        'ratios': list(args.ratios), 'seed': args.seed}
    empty = []
    for part in PARTS:
        real = sum(videos[v] for v in split[part])
        fake = len(split[part]) - real
        counts = collections.Counter(categories.get(v, 'fake') for v in split[part] if videos[v] == 0)
        per_category = f'; fakes per category: {", ".join(f"{k} {n}" for k, n in sorted(counts.items()))}' \
            if categories else ''
        print(f'{part}: {len(split[part])} videos ({real} real, {fake} fake) of {len(split["identities"][part])} '
              f'identities{per_category}')
        if args.ratios[PARTS.index(part)] > 0 and (real == 0 or fake == 0):
            empty.append(f'{part} ({real} real, {fake} fake)')
        elif part != 'train' and min(real, fake) < 10:
            print(f'  warning: the {part} part holds fewer than 10 {"reals" if real < fake else "fakes"}: its AUC '
                  f'will be coarse')
    if empty and not args.allow_empty:
        print(f'error: no real or no fake in {", ".join(empty)}: AUC, AP and EER cannot be measured there. Change '
              f'--ratios or --seed, use a larger set, or pass --allow_empty to write it anyway', file=sys.stderr)
        return 2
    if split.get('stratified'):
        chosen = split['stratified']
        print(f'--stratify category: identity shuffle of seed {chosen["seed_used"]}; '
              + (f'still missing: {", ".join(chosen["missing"])} (the identities do not allow more)'
                 if chosen['missing'] else 'every part holds reals and fakes of every category'))
    util.atomic_write_text(args.out, json.dumps(split, indent=1) + '\n')
    print(f'dropped: {len(split["dropped"])} videos whose identities fall into two parts; written {args.out}')
    return 0


def video_categories(root):
    """{video: fake category} from categories.csv (FakeAVCeleb-style sets); {} when there is none."""
    path = os.path.join(root, 'categories.csv')
    if not os.path.isfile(path):
        return {}
    with open(path, newline='') as handle:
        return {row['video']: row['category'] for row in csv.DictReader(handle)
                if row.get('video') and row.get('category')}


if __name__ == '__main__':
    sys.exit(main())
