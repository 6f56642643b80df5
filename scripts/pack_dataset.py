"""Pack a dataset folder (VoxCeleb2 or DFDC layout) into a few large shards that the datasets read directly.

    python -m scripts.pack_dataset --dataroot ./Dataset/Voxceleb2 --out /data/vox_packed --workers 8
    python -m scripts.pack_dataset --dataroot D --out P --shard $SLURM_ARRAY_TASK_ID/16      # 16 array jobs

Then train or test with ``--dataroot P``: every option means what it meant on the folder (pairing, identity split,
negatives, windows, ``--split_file``, categories), because the datasets scan the packed index exactly as they scan
the folder (``data/store.py``). Packed, a million-clip VoxCeleb2 set is a few hundred files instead of two million,
so scanning it takes seconds, copying it to a node's local disk is one ``rsync``, and a loader worker reads a sample
with one memory-mapped slice instead of opening two small files.

Every file under ``--dataroot`` (sorted by path) goes into shards of ``--files_per_shard`` files, in their stored
form. The plan depends only on the file list and ``--files_per_shard``, so it is the same on every machine:
``--shard K/N`` packs shards K, K + N, K + 2N, ... and N machines together pack all of them. A shard is written to
temporary files and renamed, its ``.json`` last, so a killed run leaves no half shard behind and a rerun skips the
shards already done (resumable). ``--workers`` packs shards in parallel. ``pack.json`` (written by every run) names
all shards; a set with shards still missing is refused with a message naming one.

Why memory-mapped shards and not WebDataset tar shards: training draws negatives from any identity of the split
and resumes inside an epoch at any sample, so every sample must be reachable at random, in O(1). Tar shards are
read as streams (samples in shard order, random access only through an extra index), while a memory-mapped shard
with an offset table gives random access, shares the page cache between loader workers, and keeps the sampler,
the epoch seeding and the skip logic of the loose folders unchanged.
The first run records its plan (the set's path, ``--files_per_shard``, a hash of the file list) in
``pack-plan.json``; a later run into the same ``--out`` with another set, another file list or another
``--files_per_shard`` is refused (``--overwrite`` starts the pack over), so a pack never mixes two sets. Every
shard's file count and SHA-256 go into ``<shard>.sum`` and ``pack.json``. ``--out`` and ``--dataroot`` may
not lie inside each other, and ``pack.lock`` keeps a second run out of the same ``--out`` (each ``--shard`` part has
its own lock).
Ctrl-C keeps the shards finished so far (the same command resumes); the pool's workers end with their parent.
Temporaries of a killed run are removed at the next start (with ``--shard``, only those an hour old: the other
parts may be writing theirs).
Exit status: 0 packed (or already packed), 2 bad arguments or input folder, 130 interrupted (143 by SIGTERM).
"""
import argparse
import hashlib
import json
import multiprocessing
import os
import sys

if __package__ in (None, ''):
    raise SystemExit('run it from the repository root as a module: python -m scripts.pack_dataset ...')

from data.store import PACK_FORMAT, PACK_INDEX, PACK_VERSION  # noqa: E402
from util import runs, util  # noqa: E402


def list_files(root):
    """Every file under ``root`` as a path relative to it, sorted; hidden files and temporaries are left out."""
    out = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith('.'))
        rel = os.path.relpath(folder, root)
        out.extend(os.path.normpath(os.path.join(rel, f)) for f in files if not f.startswith('.'))
    return sorted(out)


def shard_names(count):
    """The names of ``count`` shards: shard-00000-of-00008 ..."""
    return [f'shard-{i:05d}-of-{count:05d}' for i in range(count)]


def plan(files, per_shard):
    """[(shard name, [relative paths])] for the sorted file list."""
    chunks = [files[i:i + per_shard] for i in range(0, len(files), per_shard)] or [[]]
    return list(zip(shard_names(len(chunks)), chunks))


def is_done(out, name):
    """Whether shard ``name`` is complete (its index is written last)."""
    return os.path.isfile(os.path.join(out, name + '.json')) and os.path.isfile(os.path.join(out, name + '.bin'))


def pack_shard(job):
    """Write one shard: the files' bytes to ``<name>.bin`` and their offsets to ``<name>.json``, each through a
    temporary file and a rename. Returns (name, files, bytes)."""
    root, out, name, files = job
    tmp_bin = os.path.join(out, f'.{name}.bin.{os.getpid()}.tmp')
    entries, offset, digest = [], 0, hashlib.sha256()
    with open(tmp_bin, 'wb') as handle:
        for rel in files:
            with open(os.path.join(root, rel), 'rb') as source:
                data = source.read()
            handle.write(data)
            digest.update(data)
            entries.append([rel, offset, len(data)])
            offset += len(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.chmod(tmp_bin, util.new_file_mode())
    os.replace(tmp_bin, os.path.join(out, name + '.bin'))
    util.atomic_write_json(os.path.join(out, name + '.sum'), {'files': len(files), 'bytes': offset,
                                                                    'sha256': digest.hexdigest()})
    util.atomic_write_text(os.path.join(out, name + '.json'), json.dumps(entries) + '\n')
    return name, len(files), offset


PLAN_NAME = 'pack-plan.json'


def file_list_digest(root, files):
    """SHA-256 over the sorted relative paths and sizes of ``files`` under ``root``: what the pack will hold."""
    digest = hashlib.sha256()
    for rel in files:
        digest.update(f'{rel}\0{os.path.getsize(os.path.join(root, rel))}\n'.encode('utf-8', 'surrogateescape'))
    return digest.hexdigest()


def check_plan(out, record):
    """Refuse (ValueError) to add to ``out`` when it holds a pack of another set, another file list or another
    ``--files_per_shard`` (recorded in ``pack-plan.json`` by the first run); record the plan on a first run."""
    path = os.path.join(out, PLAN_NAME)
    try:
        with open(path) as handle:
            stored = json.load(handle)
    except FileNotFoundError:
        if any(name.startswith('shard-') for name in os.listdir(out)):
            raise ValueError(f'{out} holds shards of a pack without its plan ({PLAN_NAME}): made by an older version '
                             f'or another tool; pack into an empty folder, or --overwrite to start it over')
        util.atomic_write_json(path, record)
        return
    except (OSError, ValueError) as err:
        raise ValueError(f'{path} cannot be read ({err}); --overwrite starts the pack over') from err
    differ = [key for key in ('source', 'files_per_shard', 'files', 'file_list_sha256')
              if stored.get(key) != record[key]] if isinstance(stored, dict) else ['everything']
    if differ:
        then = {key: stored.get(key) for key in differ} if isinstance(stored, dict) else stored
        raise ValueError(f'{out} holds a pack of another plan ({", ".join(differ)}: {then} then, '
                         f'{ {key: record[key] for key in differ} } now); its shards would mix two sets. Use another '
                         f'--out, the options of that pack, or --overwrite to start it over')


def clear_pack(out):
    """Remove a pack's files from ``out`` (shards, their checksums, plan, index) for --overwrite."""
    for name in os.listdir(out):
        if name.startswith('shard-') or name in (PLAN_NAME, PACK_INDEX):
            os.remove(os.path.join(out, name))


def main(argv=None):
    """Pack this machine's shards and write pack.json; returns the exit status of the module docstring."""
    util.handle_sigterm()
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument('--dataroot', required=True, help='the dataset folder to pack (VoxCeleb2 or DFDC layout)')
    parser.add_argument('--out', required=True, help='folder that receives pack.json and the shards')
    parser.add_argument('--files_per_shard', type=int, default=10000,
                        help='files per shard (10000 VoxCeleb2 files, face and mel, are about 3 GB)')
    parser.add_argument('--workers', type=int, default=max(1, min(8, (os.cpu_count() or 2) - 1)),
                        help='shards packed in parallel')
    parser.add_argument('--shard', default='0/1', help='K/N: pack only shards K, K + N, ... (N machines)')
    parser.add_argument('--overwrite', action='store_true',
                        help='start over in an --out that holds a pack of another set or plan (its shards are '
                             'removed); without it such a folder is refused')
    args = parser.parse_args(argv)
    try:
        part, parts = util.parse_shard(args.shard)
        if args.files_per_shard < 1:
            raise ValueError('--files_per_shard must be at least 1')
        if not os.path.isdir(args.dataroot):
            raise ValueError(f'--dataroot {args.dataroot} is not a folder')
        out, root = os.path.realpath(args.out), os.path.realpath(args.dataroot)
        if os.path.commonpath([out, root]) in (out, root):
            raise ValueError(f'--out {args.out} and --dataroot {args.dataroot} must not lie inside each other (a pack '
                             f'inside its set would be packed into itself on the next run)')
        if os.path.exists(args.out) and not os.path.isdir(args.out):
            raise ValueError(f'--out {args.out} is a file')
    except ValueError as err:
        print(f'error: {err}', file=sys.stderr)
        return 2
    files = list_files(args.dataroot)
    if not files:
        print(f'error: {args.dataroot} holds no files', file=sys.stderr)
        return 2
    util.mkdirs(args.out)
    lock = runs.RunLock(args.out, 'pack.lock' if parts == 1 else f'pack-{part}-of-{parts}.lock')
    try:
        lock.acquire(' '.join(sys.argv))
    except runs.RunFolderError as err:
        print(f'error: {str(err).replace("another training uses", "another pack_dataset run writes into")}',
              file=sys.stderr)
        return 2
    try:
        return pack(args, files, part, parts)
    finally:
        lock.release()


def pack(args, files, part, parts):
    """Check the plan, pack this part's shards that are not done, write pack.json; the exit status."""
    record = {'source': os.path.abspath(args.dataroot), 'files_per_shard': args.files_per_shard, 'files': len(files),
              'file_list_sha256': file_list_digest(args.dataroot, files)}
    try:
        if args.overwrite:
            clear_pack(args.out)
        check_plan(args.out, record)
    except ValueError as err:
        print(f'error: {err}', file=sys.stderr)
        return 2
    # the other parts may be writing their shards into the same folder: only temporaries an hour old are theirs no more
    stale = runs.remove_stale_temporaries(args.out, recursive=False, min_age=0 if parts == 1 else 3600)
    if stale:
        print(f'removed {stale} temporary file(s) left by an interrupted run')
    shards = plan(files, args.files_per_shard)
    mine = [(name, chunk) for i, (name, chunk) in enumerate(shards) if i % parts == part]
    todo = [(args.dataroot, args.out, name, chunk) for name, chunk in mine if not is_done(args.out, name)]
    print(f'{len(files)} files in {len(shards)} shards; this part ({part}/{parts}): {len(mine)} shards, '
          f'{len(mine) - len(todo)} already packed')
    if todo:
        workers = max(1, min(args.workers, len(todo)))
        results = []
        try:
            if workers > 1:
                with multiprocessing.get_context('spawn').Pool(workers, initializer=util.init_pool_worker,
                                                               initargs=(os.getpid(),)) as pool:
                    results.extend(util.progress(pool.imap_unordered(pack_shard, todo), total=len(todo),
                                                 desc='shards'))
            else:
                results.extend(pack_shard(job) for job in util.progress(todo, desc='shards'))
        except KeyboardInterrupt as err:
            print(f'{"terminated (SIGTERM)" if isinstance(err, util.Terminated) else "interrupted"}: {len(results)} '
                  f'of {len(todo)} shard(s) packed and kept; the same command resumes',
                  file=sys.stderr)
            return util.EXIT_TERMINATED if isinstance(err, util.Terminated) else util.EXIT_INTERRUPTED
        print(f'packed {len(results)} shards, {sum(r[2] for r in results) / 2 ** 20:.1f} MiB')
    sums = {}
    for name, _ in shards:
        try:
            with open(os.path.join(args.out, name + '.sum')) as handle:
                sums[name] = json.load(handle)
        except (OSError, ValueError):
            pass
    util.atomic_write_text(os.path.join(args.out, PACK_INDEX), json.dumps(
        {'format': PACK_FORMAT, 'version': PACK_VERSION, 'shards': [name for name, _ in shards],
         'files': len(files), **record, 'shard_files': {name: len(chunk) for name, chunk in shards},
         'shard_sha256': {name: value.get('sha256') for name, value in sums.items()}}, indent=1) + '\n')
    missing = [name for name, _ in shards if not is_done(args.out, name)]
    if missing:
        print(f'{len(missing)} shard(s) are packed by the other parts (--shard K/{parts}); the set is usable once '
              f'all are done')
    return 0


if __name__ == '__main__':
    sys.exit(main())
