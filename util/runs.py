"""A training run's folder (``<checkpoints_dir>/<name>``): what counts as a run already there, the lock that keeps a
second training out of it, moving an old run aside for ``--overwrite``, and the temporary files a killed write
leaves behind.
"""
import datetime
import fnmatch
import json
import os
import shutil
import socket
import time

from .util import process_alive

LOCK_NAME = 'train.lock'
# the files that make a folder hold a run: checkpoints, the training state, the logs
RUN_PATTERNS = ('*_net_*.pth', '*_train_state.pth', 'loss_log.txt', 'metrics.jsonl')
# what --overwrite moves aside with them (the option table of the new run is written after the move)
RUN_EXTRAS = ('split_*.txt', 'skipped_samples*.csv', 'train_opt.txt', 'train_opt.json', 'web', 'visdom_env.json')


class RunFolderError(RuntimeError):
    """The run folder cannot be used as asked (a run already there, a lock held); the message says what to do."""


def is_plain_name(name):
    """Whether ``name`` names one entry inside a folder: not empty, not '.' or '..', no path separator, no NUL, no
    surrounding spaces."""
    return bool(name) and isinstance(name, str) and name.strip() == name and name not in ('.', '..') \
        and '/' not in name and os.sep not in name and '\0' not in name and not (os.altsep and os.altsep in name)


def check_name(name, flag='--name', where='the run is written to <checkpoints_dir>/<name>', kind='folder name'):
    """Raise ValueError unless ``name`` is a plain folder or file name (see ``is_plain_name``); ``flag``, ``where``
    and ``kind`` say which option it is and what it names."""
    if not is_plain_name(name):
        raise ValueError(f'{flag} {name!r} must be a plain {kind} (letters, digits, ._- ...; no "/", not empty, '
                         f'"." or ".."): {where}')


def run_files(folder):
    """Names of the files in ``folder`` that show a training run was there (sorted; [] for no folder)."""
    try:
        names = os.listdir(folder)
    except OSError:
        return []
    return sorted(n for n in names if any(fnmatch.fnmatch(n, p) for p in RUN_PATTERNS))


def move_aside(folder):
    """Move the run in ``folder`` (its checkpoints, logs, split lists, option table, page) into a new sub-folder
    ``replaced-<time>``; returns that path (None when there was nothing to move)."""
    names = [n for n in sorted(os.listdir(folder)) if any(fnmatch.fnmatch(n, p) for p in RUN_PATTERNS + RUN_EXTRAS)]
    if not names:
        return None
    stamp = datetime.datetime.now().strftime('%Y%m%d-%H%M%S')
    target = os.path.join(folder, f'replaced-{stamp}')
    suffix = 1
    while os.path.exists(target):
        suffix += 1
        target = os.path.join(folder, f'replaced-{stamp}-{suffix}')
    os.makedirs(target)
    for name in names:
        os.replace(os.path.join(folder, name), os.path.join(target, name))
    return target


def _alive(pid):
    """Whether a process ``pid`` runs on this machine."""
    return process_alive(pid)


class RunLock:
    """``<folder>/train.lock`` (or ``name``): JSON with the owner's pid, host, start time and command. A lock whose
    owner ran on this host and is gone is stale and taken over; one from another host is trusted until someone
    deletes it (or ``--break_lock``)."""

    def __init__(self, folder, name=LOCK_NAME):
        self.path = os.path.join(folder, name)
        self.held = False

    def read(self):
        """The lock's contents, or None when there is no lock (an unreadable lock reads as {})."""
        if not os.path.isfile(self.path):
            return None
        try:
            with open(self.path) as handle:
                info = json.load(handle)
            return info if isinstance(info, dict) else {}
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            return {}

    def stale(self, info):
        """Whether the lock ``info`` was left by a process of this host that no longer runs."""
        pid = info.get('pid')
        return info.get('host') == socket.gethostname() and isinstance(pid, int) and not _alive(pid)

    def describe(self, info):
        """The owner of lock ``info`` in words."""
        return (f'pid {info.get("pid", "?")} on {info.get("host", "?")}, started {info.get("started", "?")}'
                f' ({info.get("command", "")})')

    def check(self):
        """Raise RunFolderError when a live lock is held (a stale one is fine: ``acquire`` takes it over)."""
        info = self.read()
        if info is not None and not self.stale(info):
            other = info.get('host') not in (None, socket.gethostname())
            where = (f'on another machine ({info.get("host")}), which this one cannot check' if other else
                     'on this machine, still running')
            raise RunFolderError(f'another training uses {os.path.dirname(self.path)}: {self.describe(info)}, '
                                 f'{where} (lock: {self.path}). Wait for it or choose another --name; if that run '
                                 f'is gone (a job requeued elsewhere, a crashed node), take the folder over with '
                                 f'--break_lock (with --continue_train to resume it)')

    def break_lock(self):
        """Remove the lock, whoever holds it; returns its owner in words (None when there was none)."""
        info = self.read()
        if info is None:
            return None
        try:
            os.remove(self.path)
        except FileNotFoundError:
            pass
        return self.describe(info)

    def acquire(self, command=''):
        """Take the lock (replacing a stale one) or raise RunFolderError."""
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        info = {'pid': os.getpid(), 'host': socket.gethostname(),
                'started': datetime.datetime.now().isoformat(timespec='seconds'), 'command': command}
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            except FileExistsError:
                held = self.read()
                if held is not None and not self.stale(held):
                    self.check()
                try:
                    os.remove(self.path)    # stale: its owner is gone
                except FileNotFoundError:
                    pass
                continue
            with os.fdopen(fd, 'w') as handle:
                json.dump(info, handle)
            self.held = True
            return
        raise RunFolderError(f'could not take the lock {self.path}; another training may be starting')

    def release(self):
        """Remove the lock if this process holds it."""
        if self.held:
            self.held = False
            try:
                os.remove(self.path)
            except FileNotFoundError:
                pass


def remove_stale_temporaries(root, recursive=True, min_age=0.0):
    """Delete the temporary files and folders (``.<name>.*.tmp``, what the atomic writers use) that a killed run
    left under ``root``, those at least ``min_age`` seconds old (other processes writing there, e.g. the other
    shards of a prep run, keep theirs); returns how many."""
    removed, now = 0, time.time()

    def old(path):
        try:
            return now - os.lstat(path).st_mtime >= min_age
        except FileNotFoundError:
            return False

    for folder, dirs, files in os.walk(root):
        for name in list(dirs):
            if name.startswith('.') and name.endswith('.tmp'):
                dirs.remove(name)
                if old(os.path.join(folder, name)):
                    shutil.rmtree(os.path.join(folder, name), ignore_errors=True)
                    removed += 1
        for name in files:
            if name.startswith('.') and name.endswith('.tmp') and old(os.path.join(folder, name)):
                try:
                    os.remove(os.path.join(folder, name))
                    removed += 1
                except FileNotFoundError:
                    pass
        if not recursive:
            break
    return removed
