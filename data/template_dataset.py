"""A complete small dataset to copy when writing a new one (``--dataset_mode template``).

Copy this file to ``data/<mode>_dataset.py``, rename the class ``<Mode>Dataset`` (the mode without underscores plus
``Dataset``, compared case-insensitively) and change how it finds its files. This one reads a list: ``items.csv``
in ``--dataroot``, one row per item, with the columns

    part      train, val or test
    identity  who speaks (training: negatives never share it)
    voice     the voice file, relative to --dataroot: a mel (.npy) or, for the journal's inputs, a 16 kHz .wav
    face      the face image, relative to --dataroot (.jpg or .png)
    label     1 = the voice's own face (real), 0 = another face (fake); read for val and test
    video     the video a val or test pair belongs to (results are also given per video)

What it shows: the flags (``modify_commandline_options``), the scan with every problem reported at once
(``report_problems``: a missing file, an unknown part, a bad label), paths that must stay inside ``--dataroot``,
``load`` returning the batch contract of ``data/base_dataset.py`` (faces and voices through ``load_face`` and
``load_voice``, which follow the model's transport and input recipe), negatives drawn from ``rng`` only, and
validation through ``has_validation``. The loader, the workers, ``--skip_bad`` and the transport come from
``data/__init__.py`` and ``data/transport.py``.
"""
import csv
import os

import numpy as np

from .base_dataset import BaseDataset, DatasetError
from .faces import stack_faces

COLUMNS = ('part', 'identity', 'voice', 'face', 'label', 'video')
PARTS = ('train', 'val', 'test')


class TemplateDataset(BaseDataset):
    """Items listed in ``<dataroot>/items.csv`` (see the module docstring)."""

    @staticmethod
    def modify_commandline_options(parser, is_train):
        """This dataset's flags."""
        parser.add_argument('--items_file', type=str, default='items.csv',
                            help='the list of items, a CSV file in --dataroot (data/template_dataset.py)')
        return parser

    def __init__(self, opt, phase, n_negatives=0, **transport):
        super().__init__(opt, phase, n_negatives, **transport)
        self.items = self.read_items()   # every part's rows, read and checked once
        self.rows = [row for row in self.items if row['part'] == phase]
        if not self.rows:
            raise DatasetError(f'{self.items_path()} lists no item of part {phase}', path=self.items_path())
        self.rows = self.rows[:opt.max_dataset_size]
        identities = np.array([row['identity'] for row in self.rows])
        self.others = {who: np.flatnonzero(identities != who) for who in set(identities)}
        names = sorted(set(identities))
        self.identity_index = {who: i for i, who in enumerate(names)}
        if phase == 'train' and n_negatives and len(names) < 2:
            raise DatasetError(f'{self.items_path()}: negatives need at least two identities in part train')

    def items_path(self):
        """The items file."""
        return os.path.join(self.root, self.opt.items_file)

    def read_items(self):
        """The rows of the items file, each checked; all problems are reported together."""
        path = self.items_path()
        if not os.path.isfile(path):
            raise DatasetError(f'{path} is missing: list the items there (columns {", ".join(COLUMNS)})', path=path)
        with open(path, newline='', encoding='utf-8-sig') as handle:
            reader = csv.DictReader(handle)
            missing = set(COLUMNS) - set(reader.fieldnames or ())
            if missing:
                raise DatasetError(f'{path} lacks the column(s) {", ".join(sorted(missing))}', path=path)
            rows, problems = [], []
            for line, row in enumerate(reader, start=2):
                problem = self.check_row(row)
                if problem:
                    problems.append((f'{path}:{line}', problem))
                else:
                    rows.append(row)
        self.report_problems(problems, f'one row per item with {", ".join(COLUMNS)} (data/template_dataset.py)')
        return rows

    def check_row(self, row):
        """What is wrong with one row, or None."""
        if row['part'] not in PARTS:
            return f'part {row["part"]!r} is not one of {", ".join(PARTS)}'
        if row['part'] != 'train' and row['label'] not in ('0', '1'):
            return f'label {row["label"]!r} is not 0 or 1'
        for key in ('voice', 'face'):
            full = os.path.realpath(os.path.join(self.root, row[key]))
            if os.path.isabs(row[key]) or not full.startswith(os.path.realpath(self.root) + os.sep):
                return f'{key} {row[key]!r} is not a path inside --dataroot'
            if not self.store.isfile(os.path.join(self.root, row[key])):
                return f'{key} file {row[key]} does not exist'
        return None

    def has_validation(self):
        """Whether the list has a val part."""
        return any(row['part'] == 'val' for row in self.items)

    def test_facts(self):
        """The part of the items file tested."""
        return {'part': self.phase, 'protocol': 'sound', 'split_file': ''}

    def label_counts(self):
        """(reals, fakes) of a val or test part."""
        labels = [row['label'] for row in self.rows]
        return (labels.count('1'), labels.count('0')) if self.phase != 'train' else None

    def __len__(self):
        """Items of this part."""
        return len(self.rows)

    def path(self, row, key):
        """The full path of a row's ``voice`` or ``face``."""
        return os.path.join(self.root, row[key])

    def load(self, index, rng):
        """Training: an anchor (its voice, its face, who it is, and K faces of other identities when asked for);
        val and test: a labelled pair."""
        row = self.rows[index]
        face_path, voice_path = self.path(row, 'face'), self.path(row, 'voice')
        if self.phase != 'train':
            return {'voice': self.load_voice(voice_path), 'face': self.load_face(face_path),
                    'label': int(row['label']), 'video': row['video'] or row['voice'], 'window': 0,
                    'face_path': face_path, 'voice_path': voice_path}
        item = {'voice': self.load_voice(voice_path), 'face': self.load_face(face_path, rng, train=True),
                'identity': self.identity_index[row['identity']], 'index': index, 'face_path': face_path}
        if self.n_negatives:
            picks = rng.choice(self.others[row['identity']], size=self.n_negatives)
            item['neg_faces'] = stack_faces([self.load_face(self.path(self.rows[i], 'face'), rng, train=True)
                                             for i in picks])
            item['neg_identities'] = np.array([self.identity_index[self.rows[i]['identity']] for i in picks])
        return item
