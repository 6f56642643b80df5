"""Where a dataset's files come from: a folder (loose files), or the packed shards of ``scripts/pack_dataset.py``.

Both stores answer the same questions about paths under the dataset root (``listdir``, ``isdir``, ``isfile``,
``read``), so the datasets scan, pair, split and sample the same way whichever they are given: a packed set means
exactly what its folder meant. ``open_store(root)`` picks the packed store when ``root`` holds a ``pack.json``.

Packed format (version 1), written by ``scripts/pack_dataset.py``::

    <root>/pack.json                    {"format": "vfd-pack", "version": 1, "shards": [names], "files": count,
                                         "source", "files_per_shard", "file_list_sha256": what it packed,
                                         "shard_files": {name: count}, "shard_sha256": {name: SHA-256}}
    <root>/pack-plan.json               the plan of the first run (source, files_per_shard, the file list's hash)
    <root>/shard-00000-of-00008.bin     the files' bytes, one after another (JPEG faces, .npy mels, CSVs as stored)
    <root>/shard-00000-of-00008.json    [[relative path, offset, length], ...] for that shard
    <root>/shard-00000-of-00008.sum     its files, bytes and SHA-256 (JSON)

Opening a pack checks what its indexes claim against what is there before anything is read: shard names inside the
pack, entries whose paths stay inside it, offsets within the shard's data, no overlaps, each shard's count as
pack.json recorded it.

A shard is read through a memory map, so a worker touches only the bytes of the files it loads and the operating
system's page cache is shared between workers and processes. Files keep their stored form: mels stay float32 .npy,
faces stay JPEG (decoding happens in the loader, as for loose files).
"""
import io
import json
import mmap
import os

from util.runs import is_plain_name

from .errors import DatasetError

PACK_FORMAT, PACK_VERSION, PACK_INDEX = 'vfd-pack', 1, 'pack.json'


def open_store(root):
    """The store of a dataset root: packed when it holds ``pack.json``, loose files otherwise."""
    if os.path.isfile(os.path.join(root, PACK_INDEX)):
        return PackedStore(root)
    return LooseStore(root)


class LooseStore:
    """Files in a folder, read as they are."""

    packed = False

    def __init__(self, root):
        self.root = root

    def listdir(self, path):
        """Names in the folder ``path`` (unsorted, as ``os.listdir``)."""
        return os.listdir(path)

    def isdir(self, path):
        """Whether ``path`` is a folder."""
        return os.path.isdir(path)

    def isfile(self, path):
        """Whether ``path`` is a file."""
        return os.path.isfile(path)

    def read(self, path):
        """The bytes of the file ``path``."""
        with open(path, 'rb') as handle:
            return handle.read()

    def open_text(self, path):
        """The text file ``path``, opened for reading (for CSV and JSON side files; UTF-8, with or without the
        byte-order mark spreadsheets write)."""
        return open(path, newline='', encoding='utf-8-sig')


def is_inner_path(rel):
    """Whether ``rel`` is a relative path that stays inside its root (normalised, no '..', not absolute)."""
    return isinstance(rel, str) and bool(rel) and not os.path.isabs(rel) and os.path.normpath(rel) == rel \
        and all(is_plain_name(part) for part in rel.split(os.sep))


def read_shard_index(root, shard):
    """The entries ``(relative path, offset, length)`` of shard ``shard``'s index, checked against its data file:
    paths inside the pack, whole numbers, every file within the data and no two overlapping. DatasetError naming
    the index otherwise."""
    path = os.path.join(root, shard + '.json')
    size = os.path.getsize(os.path.join(root, shard + '.bin'))
    try:
        with open(path) as handle:
            entries = json.load(handle)
    except (OSError, ValueError) as err:
        raise DatasetError(f'{path}: cannot read the shard index ({err}); pack the folder again', path=path) from err
    if not isinstance(entries, list):
        raise DatasetError(f'{path}: a shard index is a list of [path, offset, length] entries', path=path)
    checked = []
    for entry in entries:
        ok = isinstance(entry, list) and len(entry) == 3 and is_inner_path(entry[0]) and all(
            isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in entry[1:])
        if not ok or entry[1] + entry[2] > size:
            raise DatasetError(f'{path}: entry {str(entry)[:80]} is not [a path inside the pack, offset, length] '
                               f'within the {size} bytes of {shard}.bin; pack the folder again', path=path)
        checked.append(tuple(entry))
    end = 0
    for rel, offset, length in sorted(checked, key=lambda e: e[1]):
        if offset < end:
            raise DatasetError(f'{path}: {rel} overlaps the file before it in {shard}.bin; pack the folder again',
                               path=path)
        end = offset + length
    return checked


class PackedStore:
    """The files of a packed dataset (see the module docstring), addressed by their paths under ``root``."""

    packed = True

    def __init__(self, root):
        self.root = os.path.normpath(root)
        index_path = os.path.join(root, PACK_INDEX)
        try:
            with open(index_path) as handle:
                index = json.load(handle)
        except (OSError, ValueError) as err:
            raise DatasetError(f'{index_path}: cannot read the pack index ({err})', path=index_path) from err
        if not isinstance(index, dict) or index.get('format') != PACK_FORMAT or index.get('version') != PACK_VERSION:
            raise DatasetError(f'{index_path} is not a version-{PACK_VERSION} {PACK_FORMAT} index', path=index_path)
        shards = index.get('shards')
        if not isinstance(shards, list) or not all(isinstance(name, str) and is_plain_name(name) for name in shards):
            raise DatasetError(f'{index_path}: "shards" must list the shard files by plain name (inside the pack '
                               f'folder), got {str(shards)[:80]}', path=index_path)
        self.shards = list(shards)
        missing = [s for s in self.shards if not os.path.isfile(os.path.join(root, s + '.json'))
                   or not os.path.isfile(os.path.join(root, s + '.bin'))]
        if missing:
            raise DatasetError(f'{root}: {len(missing)} of {len(self.shards)} shards are missing or unfinished, e.g. '
                               f'{missing[0]}; run scripts/pack_dataset.py again (with every --shard K/N)',
                               path=os.path.join(root, missing[0]))
        self.files = {}                    # relative path -> (shard number, offset, length)
        self.dirs = {'': set()}            # relative folder -> names in it
        counts = index.get('shard_files') if isinstance(index.get('shard_files'), dict) else {}
        for number, shard in enumerate(self.shards):
            entries = read_shard_index(root, shard)
            if shard in counts and counts[shard] != len(entries):
                raise DatasetError(f'{root}: {shard}.json lists {len(entries)} files where pack.json recorded '
                                   f'{counts[shard]}; the pack mixes two packings: pack the folder again',
                                   path=os.path.join(root, shard + '.json'))
            for rel, offset, length in entries:
                if rel in self.files:
                    raise DatasetError(f'{root}: {rel} is listed by two shards ({self.shards[self.files[rel][0]]} and '
                                       f'{shard}); the pack is damaged: pack the folder again',
                                       path=os.path.join(root, shard + '.json'))
                self.files[rel] = (number, offset, length)
                self._add_parents(rel)
        if len(self.files) != index.get('files', len(self.files)):
            raise DatasetError(f'{root}: the shards list {len(self.files)} files, the index {index["files"]}')
        self._maps = {}                    # shard number -> mmap, opened lazily (per process: workers too)

    def _add_parents(self, rel):
        """Record ``rel`` in its folder, and every folder above it in its own parent."""
        parts = rel.split(os.sep)
        for depth, name in enumerate(parts):
            self.dirs.setdefault(os.sep.join(parts[:depth]), set()).add(name)
            if depth < len(parts) - 1:
                self.dirs.setdefault(os.sep.join(parts[:depth + 1]), set())

    def _rel(self, path):
        rel = os.path.relpath(os.path.normpath(path), self.root)
        return '' if rel == '.' else rel

    def listdir(self, path):
        """Names in the folder ``path``."""
        rel = self._rel(path)
        if rel not in self.dirs:
            raise FileNotFoundError(f'{path}: no such folder in the packed set {self.root}')
        return list(self.dirs[rel])

    def isdir(self, path):
        """Whether ``path`` is a folder of the packed set."""
        return self._rel(path) in self.dirs

    def isfile(self, path):
        """Whether ``path`` is a file of the packed set."""
        return self._rel(path) in self.files

    def read(self, path):
        """The bytes of the file ``path`` (a copy out of the shard's memory map)."""
        entry = self.files.get(self._rel(path))
        if entry is None:
            raise FileNotFoundError(f'{path}: no such file in the packed set {self.root}')
        number, offset, length = entry
        shard = self._maps.get(number)
        if shard is None:
            with open(os.path.join(self.root, self.shards[number] + '.bin'), 'rb') as handle:
                shard = self._maps[number] = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) \
                    if os.fstat(handle.fileno()).st_size else b''
        return bytes(shard[offset:offset + length])

    def open_text(self, path):
        """The text file ``path`` of the packed set, as a readable text stream."""
        return io.StringIO(self.read(path).decode('utf-8-sig'), newline='')

    def __getstate__(self):   # loader workers open their own memory maps
        state = dict(self.__dict__)
        state['_maps'] = {}
        return state
