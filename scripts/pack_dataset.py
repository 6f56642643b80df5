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
Ctrl-C keeps the shards finished so far (the same command resumes); the pool's workers end with their parent.
Temporaries of a killed run are removed at the next start (with ``--shard``, only those an hour old: the other
parts may be writing theirs).
Exit status: 0 packed (or already packed), 2 bad arguments or input folder, 130 interrupted.
"""
import argparse
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
    entries, offset = [], 0
    with open(tmp_bin, 'wb') as handle:
        for rel in files:
            with open(os.path.join(root, rel), 'rb') as source:
                data = source.read()
            handle.write(data)
            entries.append([rel, offset, len(data)])
            offset += len(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.chmod(tmp_bin, 0o666 & ~util.UMASK)
    os.replace(tmp_bin, os.path.join(out, name + '.bin'))
    util.atomic_write_text(os.path.join(out, name + '.json'), json.dumps(entries) + '\n')
    return name, len(files), offset


def main(argv=None):
    """Pack this machine's shards and write pack.json; returns the exit status of the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument('--dataroot', required=True, help='the dataset folder to pack (VoxCeleb2 or DFDC layout)')
    parser.add_argument('--out', required=True, help='folder that receives pack.json and the shards')
    parser.add_argument('--files_per_shard', type=int, default=10000,
                        help='files per shard (10000 VoxCeleb2 files, face and mel, are about 3 GB)')
    parser.add_argument('--workers', type=int, default=max(1, min(8, (os.cpu_count() or 2) - 1)),
                        help='shards packed in parallel')
    parser.add_argument('--shard', default='0/1', help='K/N: pack only shards K, K + N, ... (N machines)')
    args = parser.parse_args(argv)
    try:
        part, parts = util.parse_shard(args.shard)
        if args.files_per_shard < 1:
            raise ValueError('--files_per_shard must be at least 1')
        if not os.path.isdir(args.dataroot):
            raise ValueError(f'--dataroot {args.dataroot} is not a folder')
        if os.path.abspath(args.out) == os.path.abspath(args.dataroot):
            raise ValueError('--out must be another folder than --dataroot')
    except ValueError as err:
        print(f'error: {err}', file=sys.stderr)
        return 2
    files = list_files(args.dataroot)
    if not files:
        print(f'error: {args.dataroot} holds no files', file=sys.stderr)
        return 2
    util.mkdirs(args.out)
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
        except KeyboardInterrupt:
            print(f'interrupted: {len(results)} of {len(todo)} shard(s) packed and kept; the same command resumes',
                  file=sys.stderr)
            return util.EXIT_INTERRUPTED
        print(f'packed {len(results)} shards, {sum(r[2] for r in results) / 2 ** 20:.1f} MiB')
    util.atomic_write_text(os.path.join(args.out, PACK_INDEX), json.dumps(
        {'format': PACK_FORMAT, 'version': PACK_VERSION, 'shards': [name for name, _ in shards],
         'files': len(files), 'source': os.path.abspath(args.dataroot)}, indent=1) + '\n')
    missing = [name for name, _ in shards if not is_done(args.out, name)]
    if missing:
        print(f'{len(missing)} shard(s) are packed by the other parts (--shard K/{parts}); the set is usable once '
              f'all are done')
    return 0


if __name__ == '__main__':
    sys.exit(main())
