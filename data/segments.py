"""Fake segments of partially manipulated videos (AV-Deepfake1M, LAV-DF): their published metadata, and the
``segments.json`` that ``scripts/prep_av1m.py`` writes beside a prepared set for test_DF.py.

Published metadata: a JSON list with one object per video. AV-Deepfake1M (``<split>_metadata.json``; a video at
``<root>/<split>/<file>``) gives ``file``, ``split``, ``modify_type`` (real, visual_modified, audio_modified,
both_modified), ``fake_segments``, ``visual_fake_segments``, ``audio_fake_segments`` and ``video_frames`` (25 fps).
LAV-DF (``metadata.json``; a video at ``<root>/<file>``) gives ``file``, ``split``, ``modify_video``,
``modify_audio``, ``fake_periods`` and ``duration``. Both read into one record per video (``read_metadata``).

``segments.json`` (format ``vfd-segments``, version 1)::

    {"format": "vfd-segments", "version": 1, "hop": 1.0, "window_seconds": 3.0, "min_overlap": 0.0,
     "source": "...", "flavour": "av1m" | "lavdf", "split": "val",
     "videos": {"<video>": {"file": "<file as published>", "label": 1 | 0, "modify_type": "...",
                            "duration": 9.6, "fake_segments": [[s, e], ...],
                            "visual_fake_segments": [...], "audio_fake_segments": [...]}}}

Window k of a video covers ``[k x hop, min(k x hop + window_seconds, duration)]`` seconds of it.
"""
import json
import math
import os

from .errors import DatasetError, read_json_file

FORMAT, VERSION = 'vfd-segments', 1
FILE_NAME = 'segments.json'
MODIFY_TYPES = ('real', 'visual_modified', 'audio_modified', 'both_modified')
FPS = 25.0   # AV-Deepfake1M's frame rate (its metadata counts frames)
MAX_METADATA_BYTES = 2 * 2 ** 30


def _segments(value, where):
    """A list of [start, end] pairs of finite numbers with 0 <= start < end, or DatasetError naming ``where``."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise DatasetError(f'{where}: expected a list of [start, end] pairs, got {str(value)[:60]}')
    out = []
    for pair in value:
        if (not isinstance(pair, (list, tuple)) or len(pair) != 2
                or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in pair)):
            raise DatasetError(f'{where}: {str(pair)[:60]} is not a [start, end] pair of numbers')
        start, end = float(pair[0]), float(pair[1])
        if not (math.isfinite(start) and math.isfinite(end) and 0 <= start < end):
            raise DatasetError(f'{where}: the segment [{start}, {end}] is not 0 <= start < end')
        out.append([start, end])
    return out


def record(entry, index, source):
    """One video's record from a published metadata entry (either flavour); DatasetError for a malformed one."""
    where = f'{source}: entry {index}'
    if not isinstance(entry, dict) or not isinstance(entry.get('file'), str) or not entry['file']:
        raise DatasetError(f'{where}: expected an object with a "file" path, got {str(entry)[:80]}', path=source)
    where = f'{where} ({entry["file"]})'
    if 'fake_segments' in entry or 'modify_type' in entry:    # AV-Deepfake1M
        fake = _segments(entry.get('fake_segments'), where)
        visual = _segments(entry.get('visual_fake_segments', []), where)
        audio = _segments(entry.get('audio_fake_segments', []), where)
        kind = str(entry.get('modify_type') or ('real' if not fake else 'both_modified')).replace('-', '_')
        frames = entry.get('video_frames')
        duration = float(frames) / FPS if isinstance(frames, (int, float)) and frames > 0 else None
    elif 'fake_periods' in entry:                               # LAV-DF
        fake = _segments(entry.get('fake_periods'), where)
        video, sound = bool(entry.get('modify_video')), bool(entry.get('modify_audio'))
        visual, audio = (fake if video else []), (fake if sound else [])
        kind = ('both_modified' if video and sound else 'visual_modified' if video else
                'audio_modified' if sound else 'real')
        duration = entry.get('duration')
        duration = float(duration) if isinstance(duration, (int, float)) and duration > 0 else None
    else:
        raise DatasetError(f'{where}: neither AV-Deepfake1M metadata (fake_segments) nor LAV-DF metadata '
                           f'(fake_periods)', path=source)
    if kind not in MODIFY_TYPES:
        raise DatasetError(f'{where}: unknown modify_type {kind!r}; expected one of {", ".join(MODIFY_TYPES)}',
                           path=source)
    if (kind == 'real') != (not fake):
        raise DatasetError(f'{where}: modify_type {kind} with {len(fake)} fake segment(s)', path=source)
    if duration is not None and not math.isfinite(duration):
        duration = None
    return {'file': entry['file'], 'split': str(entry.get('split') or ''), 'label': 0 if fake else 1,
            'modify_type': kind, 'duration': duration, 'fake_segments': fake, 'visual_fake_segments': visual,
            'audio_fake_segments': audio}


def read_metadata(path):
    """The records of a published metadata file (a JSON list), in its order."""
    entries = read_json_file(path, path, MAX_METADATA_BYTES)
    if not isinstance(entries, list):
        raise DatasetError(f'{path}: expected a JSON list of videos (AV-Deepfake1M or LAV-DF metadata)', path=path)
    return [record(entry, i, path) for i, entry in enumerate(entries)]


def window_span(index, hop, window_seconds, duration=None):
    """(start, end) in seconds of window ``index`` of a grid of ``hop`` seconds."""
    start = index * hop
    end = start + window_seconds
    if duration is not None and duration > start:
        end = min(end, duration)
    return start, end


def load(root, store=None):
    """The ``segments.json`` of a prepared set, checked, or None when the set has none."""
    path = os.path.join(root, FILE_NAME)
    try:
        if store is not None:
            if not store.isfile(path):
                return None
            with store.open_text(path) as handle:
                data = json.load(handle)
        else:
            if not os.path.isfile(path):
                return None
            with open(path, encoding='utf-8') as handle:
                data = json.load(handle)
    except (OSError, ValueError) as err:
        raise DatasetError(f'{path}: cannot read it as JSON ({err})', path=path) from err
    if not isinstance(data, dict) or data.get('format') != FORMAT or not isinstance(data.get('videos'), dict):
        raise DatasetError(f'{path}: not a {FORMAT} file (scripts/prep_av1m.py writes it)', path=path)
    if data.get('version') != VERSION:
        raise DatasetError(f'{path}: version {data.get("version")!r}; this code reads version {VERSION}', path=path)
    for key in ('hop', 'window_seconds'):
        value = data.get(key)
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 < value < 1e4:
            raise DatasetError(f'{path}: "{key}" must be a positive number of seconds, got {value!r}', path=path)
    overlap = data.get('min_overlap', 0.0)
    if not isinstance(overlap, (int, float)) or isinstance(overlap, bool) or not 0 <= overlap < data['window_seconds']:
        raise DatasetError(f'{path}: "min_overlap" must be a number of seconds in [0, window_seconds), got '
                           f'{overlap!r}', path=path)
    for video, info in data['videos'].items():
        where = f'{path}: video {video}'
        if not isinstance(info, dict):
            raise DatasetError(f'{where}: expected an object', path=path)
        for key in ('fake_segments', 'visual_fake_segments', 'audio_fake_segments'):
            info[key] = _segments(info.get(key, []), f'{where}, {key}')
        duration = info.get('duration')
        info['duration'] = float(duration) if isinstance(duration, (int, float)) and not isinstance(duration, bool) \
            and math.isfinite(duration) and duration > 0 else None
    return data
