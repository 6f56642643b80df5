"""VoxCeleb2-style training data: faces and voices of many identities, one voice-face pair per clip."""
import logging
import os

import numpy as np

from util import util

from .base_dataset import BaseDataset, DatasetError, is_image
from .faces import stack_faces
from .layouts import VOX_LAYOUT as LAYOUT
from .layouts import vox_voice_name

logger = logging.getLogger(__name__)

SCAN_PROGRESS_FROM = 200  # identities; smaller scans finish before a progress bar would say anything


class VoxImageDataset(BaseDataset):
    """Anchor clips with their own face and ``--n_negatives`` faces of OTHER identities (``--dataset_mode Vox_image``).

    Layout (video names may contain ``_`` and ``-``; the voice name is built from the face path)::

        <dataroot>/face/<identity>/<video>/<frame>.jpg
        <dataroot>/voice/<identity>_<video>_<frame>.npy      float (n_mels, frames) mel in dB
        <dataroot>/voice/<identity>_<video>_<frame>.wav      the clip's 16 kHz audio (what journal models read)

    Identity folders are those whose name starts with ``--id_prefix`` ('id'). Identities are sorted; the first
    ``--val_ratio`` of them (at least two when the ratio is above 0) form the validation split, the rest the
    training split, so no identity is in both. Per identity at most ``--max_clips_per_id`` clips are kept, taken
    in turn from its sorted videos; the training split holds at most ``--max_dataset_size`` clips and the
    validation split at most ``--max_val_clips``.

    Training items (anchors; K = the model's ``n_negatives``, 0 with in-batch negatives; S = ``--crop_size``,
    M = ``--n_mels``, T = ``--n_frames``)::

        voice           float16 (1, M, T)     the anchor's normalised mel, values in [-1, 0] (the transport dtype)
        face            uint8   (3, S, S)     the anchor's own face (the positive)
        identity        int64   ()            index of the anchor's identity in ``self.identities``
        index           int64   ()            the anchor's index in the dataset
        face_path       str                   path of the anchor's face image
        neg_faces       uint8   (K, 3, S, S)  only when K > 0: faces of K clips of other identities
        neg_identities  int64   (K,)          only when K > 0: their identity indices (never ``identity``)
        replaced        list of dict          only with --skip_bad: {'path', 'reason'} of unreadable negatives that
                                              were replaced by another draw

    Validation items (labelled pairs, K + 1 per held-out clip: the real pair, then K mismatched ones)::

        voice       float16 (1, M, T)   the clip's voice
        face        uint8   (3, S, S)   its own face (label 1) or a face of another identity (label 0)
        label       int64   ()
        video       str                 the clip (``<identity>/<video>/<frame>``) whose voice it is
        window      int64   ()          0 for the real pair, 1..K for the mismatched ones
        face_path   str
        voice_path  str

    Negatives are drawn without replacement from the clips of all other identities of the same split, from the
    item's generator (``--seed``, epoch, clip index): a new draw every training epoch, a fixed one for validation.
    """

    @staticmethod
    def modify_commandline_options(parser, is_train):
        """The identity split and the clip caps."""
        parser.add_argument('--val_ratio', type=float, default=0.1,
                            help='share of the sorted identities held out for validation (0 = no validation)')
        parser.add_argument('--id_prefix', type=str, default='id',
                            help='only folders of face/ whose name starts with this are identities ("" = all)')
        parser.add_argument('--max_clips_per_id', type=int, default=40,
                            help='keep at most this many clips per identity (0 = all)')
        parser.add_argument('--max_val_clips', type=int, default=15000,
                            help='keep at most this many validation clips')
        parser.set_defaults(max_dataset_size=100000)
        return parser

    def __init__(self, opt, phase, n_negatives=0, **transport):
        BaseDataset.__init__(self, opt, phase, n_negatives, **transport)
        if phase == 'val' and self.n_negatives < 1:
            raise DatasetError('validation needs at least one mismatched pair per clip (n_negatives >= 1)')
        self.face_dir = os.path.join(self.root, 'face')
        self.voice_dir = os.path.join(self.root, 'voice')
        for folder in (self.face_dir, self.voice_dir):
            if not self.store.isdir(folder):
                raise DatasetError(f'{folder} is missing; Vox_image expects {LAYOUT}')
        all_ids = sorted(d for d in self.store.listdir(self.face_dir)
                         if d.startswith(opt.id_prefix) and self.store.isdir(os.path.join(self.face_dir, d)))
        where = f'{self.face_dir} (identity folders start with {opt.id_prefix!r}, see --id_prefix)'
        self.train_ids, self.val_ids = split_identities(all_ids, opt.val_ratio, where)
        if phase == 'val':
            ids, cap = self.val_ids, opt.max_val_clips
        else:
            ids, cap = self.train_ids, opt.max_dataset_size
        if phase == 'val' and not ids:
            raise DatasetError('no validation identities: --val_ratio is 0')
        self.identities = ids
        self.face_paths, self.voice_paths, self.labels, problems = scan_clips(
            self.store, self.face_dir, self.voice_dir, ids, opt.max_clips_per_id, cap,
            all_identities=all_ids if phase == 'train' else None, ext=self.voice_ext, hint=self.missing_voice_hint())
        self.report_problems(problems, LAYOUT)
        if len(set(self.labels)) < 2:
            raise DatasetError(f'the {phase} split has clips of fewer than two identities under {self.face_dir}; '
                               f'other-identity negatives need at least two ({LAYOUT})')
        self.labels = np.asarray(self.labels, dtype=np.int64)
        # clips are grouped by identity: identity i owns indices [starts[i], starts[i + 1])
        self.starts = np.searchsorted(self.labels, np.arange(len(self.identities) + 1))
        logger.info('Vox_image %s: %d clips of %d identities', phase, len(self), len(set(self.labels.tolist())))

    def split_lists(self):
        """The identity split, to save with the run: {'train': [...], 'val': [...]}."""
        return {'train': list(self.train_ids), 'val': list(self.val_ids)}

    def has_validation(self):
        """Validation runs on the held-out identities (``--val_ratio`` above 0)."""
        return self.opt.val_ratio > 0

    def __len__(self):
        """Training: the clips; validation: the clips times (1 + K) pairs."""
        per_clip = 1 + self.n_negatives if self.phase == 'val' else 1
        return len(self.face_paths) * per_clip

    def label_counts(self):
        """(reals, fakes) of the validation pairs: one real and K mismatched pairs per clip."""
        if self.phase != 'val':
            return None
        return self.clip_count(), self.clip_count() * self.n_negatives

    def clip_count(self):
        """Number of clips (anchors) of this split."""
        return len(self.face_paths)

    def sample_negatives(self, index, rng):
        """``n_negatives`` clip indices of identities other than the anchor's, without replacement when possible."""
        label = self.labels[index]
        start, end = self.starts[label], self.starts[label + 1]
        others = self.clip_count() - (end - start)
        k = self.n_negatives
        picks = rng.choice(others, size=k, replace=k > others)
        return np.where(picks < start, picks, picks + (end - start))  # skip the anchor identity's block

    def load(self, index, rng):
        """A training anchor, or a validation pair (see the class docstring)."""
        if self.phase == 'val':
            return self._pair(index)
        item = {
            'voice': self.load_voice(self.voice_paths[index]),
            'face': self.load_face(self.face_paths[index], rng, train=True),
            'identity': np.int64(self.labels[index]),
            'index': np.int64(index),
            'face_path': self.face_paths[index],
        }
        if self.n_negatives:
            negatives = self.sample_negatives(index, rng)
            replaced = []
            faces = [self._negative_face(index, slot, negatives, rng, replaced) for slot in range(len(negatives))]
            item['neg_faces'] = stack_faces(faces)
            item['neg_identities'] = self.labels[negatives]
            if self.opt.skip_bad:
                item['replaced'] = replaced
        return item

    def _pair(self, index):
        """Validation pair ``index``: slot 0 of each clip is its real pair, slots 1..K its mismatched pairs, with the
        clip's negatives drawn as in training (epoch 0), so every validation sees the same pairs."""
        clip, slot = divmod(index, 1 + self.n_negatives)
        face_index = clip if slot == 0 else int(self.sample_negatives(clip, self.rng(0, clip))[slot - 1])
        identity, video, frame = self.face_paths[clip].split(os.sep)[-3:]   # <face_dir>/<identity>/<video>/<frame>
        return {
            'voice': self.load_voice(self.voice_paths[clip]),
            'face': self.load_face(self.face_paths[face_index]),
            'label': np.int64(slot == 0),
            'video': f'{identity}/{video}/{os.path.splitext(frame)[0]}',
            'window': np.int64(slot),
            'face_path': self.face_paths[face_index],
            'voice_path': self.voice_paths[clip],
        }

    def _negative_face(self, index, slot, negatives, rng, replaced, attempts=10):
        """Load negative ``negatives[slot]``; with ``--skip_bad`` an unreadable one is recorded in ``replaced`` and
        replaced by another draw."""
        for _ in range(attempts):
            try:
                return self.load_face(self.face_paths[negatives[slot]], rng, train=True)
            except DatasetError as err:
                if not self.opt.skip_bad:
                    raise
                replaced.append({'path': err.path or self.face_paths[negatives[slot]], 'reason': str(err)})
                negatives[slot] = int(self.sample_negatives(index, rng)[0])
        raise DatasetError(f'{attempts} negatives in a row for {self.face_paths[index]} could not be read',
                           path=self.face_paths[index])


def split_identities(identities, val_ratio, where):
    """Split sorted identity names: the first ``val_ratio`` (at least 2 if above 0) validate, the rest train."""
    identities = sorted(identities)
    if len(identities) < 2:
        raise DatasetError(f'found {len(identities)} identity folder(s) under {where}; VFD needs at least two '
                           f'identities to draw negatives ({LAYOUT})')
    if not 0 <= val_ratio < 1:
        raise DatasetError(f'--val_ratio must lie in [0, 1), got {val_ratio}')
    n_val = 0 if val_ratio == 0 else max(2, int(len(identities) * val_ratio))
    if n_val and len(identities) - n_val < 2:
        raise DatasetError(f'{len(identities)} identities are too few to hold out {n_val} for validation and keep '
                           f'two for training; add identities or use --val_ratio 0')
    return identities[n_val:], identities[:n_val]


def voice_owner(name, identities):
    """The identity in ``identities`` (a set) whose ``<identity>_`` prefix starts voice file ``name``, or None."""
    pos = name.find('_')
    while pos != -1:
        if name[:pos] in identities:
            return name[:pos]
        pos = name.find('_', pos + 1)
    return None


def scan_clips(store, face_dir, voice_dir, identities, max_per_id, max_total, all_identities=None, ext='.npy',
               hint=''):
    """Pair faces with voices (the files ending in ``ext``) for ``identities``.

    ``store`` (``data/store.py``) answers the folder questions. Returns (face paths, voice paths, identity index per
    clip, problems). ``problems`` lists (path, reason) for
    faces without a voice (``hint`` added to the reason), voices of these identities without a face, empty folders
    and, when ``all_identities`` is given, voice files that belong to no identity folder at all.
    """
    voices = {n for n in store.listdir(voice_dir) if n.endswith(ext)}
    faces_out, voices_out, labels, problems, matched, scanned = [], [], [], [], set(), set()
    scan = util.progress(identities, desc=f'scanning {face_dir}', disable=len(identities) < SCAN_PROGRESS_FROM)
    for label, identity in enumerate(scan):
        if len(faces_out) >= max_total:
            break
        scanned.add(identity)
        per_video = []
        id_dir = os.path.join(face_dir, identity)
        for video in sorted(store.listdir(id_dir)):
            video_dir = os.path.join(id_dir, video)
            if not store.isdir(video_dir):
                continue
            frames = sorted(f for f in store.listdir(video_dir) if is_image(f))
            if not frames:
                problems.append((video_dir, 'empty folder: no face images'))
            per_video.append([(video, f) for f in frames])
        clips = interleave(per_video)
        if not clips and not per_video:
            problems.append((id_dir, 'empty folder: no video folders with face images'))
        taken = 0
        for video, frame in clips:
            voice_name = vox_voice_name(identity, video, os.path.splitext(frame)[0], ext)
            face_path = os.path.join(id_dir, video, frame)
            if voice_name not in voices:
                problems.append((face_path, f'no voice file {os.path.join(voice_dir, voice_name)}{hint}'))
                continue
            matched.add(voice_name)
            full = (max_per_id and taken >= max_per_id) or len(faces_out) >= max_total
            if not full:
                faces_out.append(face_path)
                voices_out.append(os.path.join(voice_dir, voice_name))
                labels.append(label)
                taken += 1
    owners = set(all_identities) if all_identities is not None else scanned
    for name in sorted(voices - matched):
        owner = voice_owner(name, owners)
        if owner in scanned:
            problems.append((os.path.join(voice_dir, name), f'no face image: expected one in {face_dir}/{owner}/'))
        elif owner is None and all_identities is not None:
            problems.append((os.path.join(voice_dir, name), f'belongs to no identity folder of {face_dir}'))
    return faces_out, voices_out, labels, problems


def interleave(lists):
    """Interleave lists: first items of each, then second items, ..."""
    out = []
    for depth in range(max((len(x) for x in lists), default=0)):
        out.extend(x[depth] for x in lists if depth < len(x))
    return out
