"""Small helpers shared by the entry scripts: folders, atomic writes, seeding, logging, the git commit."""
import csv
import errno
import importlib
import io
import json
import logging
import math
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch
from tqdm import tqdm

logger = logging.getLogger(__name__)


def mkdirs(*paths):
    """Create every folder in ``paths`` (no error if it exists)."""
    for path in paths:
        os.makedirs(path, exist_ok=True)


def _umask_by_setting():
    """The process's umask, read by setting it and putting it back (not safe while other threads create files)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


UMASK_AT_IMPORT = _umask_by_setting()


def current_umask():
    """The process's umask now (a caller may set it after importing this module): read from /proc/self/status on
    Linux, which changes nothing; where that line is missing, the umask this module found at import."""
    try:
        with open('/proc/self/status') as handle:
            for line in handle:
                if line.startswith('Umask:'):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return UMASK_AT_IMPORT


def new_file_mode():
    """The mode ``open()`` would give a new file now: 0666 less the current umask."""
    return 0o666 & ~current_umask()


def _atomic_write(path, write, durable=True):
    """Write through a temporary file in the same folder, then rename it over ``path``.

    ``durable`` also flushes the file to disk before the rename (survives a power cut, not only a killed process).
    """
    folder = os.path.dirname(os.path.abspath(path))
    mkdirs(folder)
    fd, tmp = tempfile.mkstemp(prefix='.' + os.path.basename(path) + '.', suffix='.tmp', dir=folder)
    try:
        os.fchmod(fd, new_file_mode())   # mkstemp makes 0600; the file gets what open() would give it
        with os.fdopen(fd, 'wb') as handle:
            write(handle)
            handle.flush()
            if durable:
                os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def atomic_write_text(path, text):
    """Write ``text`` to ``path`` so that readers see the old or the new file, never half of one. UTF-8; file names
    that are not UTF-8 on disk (surrogate-escaped by Python) are written back as the bytes they were."""
    _atomic_write(path, lambda handle: handle.write(text.encode('utf-8', errors='surrogateescape')))


def strict_json(obj):
    """``obj`` with every NaN or infinite float replaced by None, so that ``json.dumps(..., allow_nan=False)``
    writes strict JSON (NaN is not JSON; many readers refuse it)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {key: strict_json(value) for key, value in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [strict_json(value) for value in obj]
    if hasattr(obj, 'item') and getattr(obj, 'ndim', None) == 0:   # numpy and torch scalars
        return strict_json(obj.item())
    return obj


def atomic_write_json(path, obj):
    """``obj`` as strict JSON (non-finite numbers as null), indented, written atomically."""
    atomic_write_text(path, json.dumps(strict_json(obj), indent=1, default=str, allow_nan=False) + '\n')


def atomic_write_csv(path, header, rows):
    """A CSV file (``header``, then ``rows``), written atomically."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator='\n')
    writer.writerow(header)
    writer.writerows(rows)
    atomic_write_text(path, buffer.getvalue())


def atomic_write_bytes(path, data, durable=True):
    """Write ``data`` (bytes) to ``path`` atomically; see ``_atomic_write`` for ``durable``."""
    _atomic_write(path, lambda handle: handle.write(data), durable=durable)


def atomic_torch_save(obj, path):
    """``torch.save`` through a temporary file and a rename."""
    _atomic_write(path, lambda handle: torch.save(obj, handle))


def seed_everything(seed):
    """Seed Python, NumPy and torch (all devices). Called once, from the entry scripts."""
    random.seed(seed)
    np.random.seed(seed % 2 ** 32)
    torch.manual_seed(seed)


def set_deterministic(enabled):
    """Deterministic algorithms only (``--deterministic``): same seed, same losses and scores on the same machine.

    Called once, from the entry scripts. On CUDA, cuBLAS needs CUBLAS_WORKSPACE_CONFIG set before its first use.
    """
    if not enabled:
        return
    os.environ.setdefault('CUBLAS_WORKSPACE_CONFIG', ':4096:8')
    torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True


class WriteCheckError(RuntimeError):
    """A folder the run must write to cannot take the files (not writable, or too little free space)."""


def check_writable(folder, what, need_bytes=0):
    """Make ``folder`` and prove it takes a file; with ``need_bytes``, check the free space too.

    Raises WriteCheckError with a message that says which folder and what to do, before any long work starts.
    """
    try:
        mkdirs(folder)
        fd, probe = tempfile.mkstemp(prefix='.write_check.', dir=folder)
        os.close(fd)
        os.remove(probe)
    except OSError as err:
        raise WriteCheckError(f'cannot write {what} to {folder}: {err.strerror or err}; choose another folder '
                              f'or fix its permissions') from err
    if need_bytes:
        free = shutil.disk_usage(folder).free
        if free < need_bytes:
            raise WriteCheckError(f'{folder} has {free / 2 ** 30:.2f} GiB free, and {what} need about '
                                  f'{need_bytes / 2 ** 30:.2f} GiB; free some space or choose another folder')


def setup_logging(verbose=False):
    """Log to stderr as 'LEVEL name: message'; entry scripts call this once."""
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format='%(levelname)s %(name)s: %(message)s')


def git_commit():
    """The current git commit of the code (with '-dirty' for local changes), or 'unknown'."""
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        sha = subprocess.run(['git', 'rev-parse', '--short', 'HEAD'], cwd=here, capture_output=True, text=True,
                             timeout=10).stdout.strip()
        dirty = subprocess.run(['git', 'status', '--porcelain', '--untracked-files=no'], cwd=here,
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return 'unknown'
    return (sha + ('-dirty' if dirty else '')) if sha else 'unknown'


def available_components(folder, suffix):
    """Names ``<name>`` of the files ``<name><suffix>`` in ``folder`` (``base<suffix>`` excluded), sorted."""
    return sorted(f[:-len(suffix)] for f in os.listdir(folder) if f.endswith(suffix) and f != 'base' + suffix)


def find_component(package, name, kind, base):
    """The class for ``--<flag> name``: module ``<package>.<name>_<kind>``, class ``<name without _><Kind>``.

    The class name is compared case-insensitively and must subclass ``base``. A name without such a file raises
    ValueError listing the names that have one.
    """
    folder = os.path.dirname(importlib.import_module(package).__file__)
    valid = available_components(folder, f'_{kind}.py')
    flag = {'model': '--model', 'dataset': '--dataset_mode'}.get(kind, kind)
    if name not in valid:
        raise ValueError(f'unknown {flag} {name!r}; valid names: {", ".join(valid)}')
    module = importlib.import_module(f'{package}.{name}_{kind}')
    target = name.replace('_', '').lower() + kind
    for attr, cls in vars(module).items():
        if attr.lower() == target and isinstance(cls, type) and issubclass(cls, base):
            return cls
    raise ValueError(f'{package}/{name}_{kind}.py defines no {base.__name__} subclass named like '
                     f'{name.replace("_", "")}{kind.capitalize()}')


def die_with_parent(parent_pid, sig=None):
    """Ask Linux to end this process when its parent (``parent_pid``) dies: a worker of a SIGKILLed parent would run
    on; a no-op elsewhere."""
    if not sys.platform.startswith('linux'):
        return
    import ctypes
    import signal
    try:
        libc = ctypes.CDLL('libc.so.6', use_errno=True)
        libc.prctl(1, int(sig or signal.SIGTERM))   # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent_pid:   # the parent died before the call
        os._exit(1)


def init_pool_worker(parent_pid):
    """What every pool worker of the prep and pack scripts does first: ignore Ctrl-C (the parent stops the pool and
    writes its lists) and end with its parent, even a SIGKILLed one."""
    import signal
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    die_with_parent(parent_pid)


def process_alive(pid):
    """Whether a process ``pid`` runs on this machine (one of another user counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


EXIT_INTERRUPTED = 130   # what a shell reports for a command ended by Ctrl-C
EXIT_TERMINATED = 143    # ... and by SIGTERM (what SLURM, Kubernetes and `kill` send)


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the process is, so that it unwinds as from Ctrl-C: ``finally`` blocks release locks,
    and checkpoints (written atomically) stay as they were."""


def _raise_terminated(signum, _frame):
    raise Terminated(f'signal {signum}')


def handle_sigterm():
    """Turn SIGTERM into ``Terminated`` in this (main) process; a no-op outside the main thread."""
    import signal
    import threading
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _raise_terminated)


def ignore_sigterm_in_worker(_worker_id=None):
    """DataLoader workers: leave SIGTERM to the main process (which ends them as it shuts down), so that a job's
    SIGTERM, sent to every process, gives one clean message instead of a worker's death."""
    import signal
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


# a full disk (or quota) met anywhere in a run: one error line, not a traceback
DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


def run_entry(options, job, argv=None, errors=(), interrupted='', status=None, **parse_kwargs):
    """Parse the options, set up logging and run ``job(opt)``: the body of an entry script's ``main``.

    An exception of the types in ``errors`` (bad data, an unusable checkpoint: the user's to fix) prints one
    ``error:`` line to stderr and returns 2 instead of a traceback, as does a full disk met anywhere (with
    ``interrupted``, what was kept); Ctrl-C prints one ``interrupted`` line (with
    ``interrupted``, what was kept) and returns 130, SIGTERM one ``terminated`` line and 143; success returns 0. ``status`` maps further exception types to
    their own exit status (one ``error:`` line too). ``parse_kwargs`` go to ``options.parse`` (``save``,
    ``verbose``).
    """
    status = status or {}
    handle_sigterm()
    try:
        opt = options.parse(argv, **parse_kwargs)
        setup_logging(opt.verbose)
        job(opt)
    except (*errors, *status) as err:
        print(f'error: {err}', file=sys.stderr)
        return next((code for kind, code in status.items() if isinstance(err, kind)), 2)
    except OSError as err:
        if err.errno not in DISK_FULL:
            raise
        where = f' while writing {err.filename}' if err.filename else ''
        print(f'error: {err.strerror}{where}; free some space{"; " + interrupted if interrupted else ""}',
              file=sys.stderr)
        return 2
    except Terminated:
        print(f'terminated (SIGTERM){"; " + interrupted if interrupted else ""}', file=sys.stderr)
        return EXIT_TERMINATED
    except KeyboardInterrupt:
        print(f'interrupted{"; " + interrupted if interrupted else ""}', file=sys.stderr)
        return EXIT_INTERRUPTED
    return 0


def progress(iterable=None, *, total=None, desc='', initial=0, leave=True, disable=False):
    """A progress bar: tqdm on a terminal; on a pipe or a file (CI logs) plain lines instead of redraws.

    The plain form writes one line to stderr every 10 % of ``total`` (or every minute when the total is unknown)
    and one at the end, so logs stay readable. Both forms iterate, and offer ``update``, ``set_postfix``,
    ``close`` and ``total``.
    """
    if disable or sys.stderr.isatty():
        return tqdm(iterable, total=total, desc=desc, initial=initial, leave=leave, disable=disable,
                    dynamic_ncols=True)
    return LineProgress(iterable, total=total, desc=desc, initial=initial)


class LineProgress:
    """Progress reported as whole lines on stderr (see ``progress``)."""

    def __init__(self, iterable=None, total=None, desc='', initial=0):
        self.iterable = iterable
        if total is None and iterable is not None and hasattr(iterable, '__len__'):
            total = len(iterable)
        self.total, self.desc, self.n = total, desc, initial
        self.start = self.last = time.time()
        self.next_tenth = (10 * initial // total + 1) if total else 0
        self.postfix = ''
        self.closed = False

    def __iter__(self):
        for item in self.iterable:
            yield item
            self.update()
        self.close()

    def set_postfix(self, values):
        """Show ``values`` (a dict) as key=value pairs at the end of the following lines."""
        self.postfix = ' '.join(f'{k}={v}' for k, v in values.items())

    def _line(self):
        done = f'{self.n}/{self.total}' if self.total else f'{self.n}'
        print(f'{self.desc}: {done} in {time.time() - self.start:.0f} s {self.postfix}'.rstrip(), file=sys.stderr,
              flush=True)
        self.last = time.time()

    def update(self, n=1):
        """Count ``n`` more steps; write a line at each new tenth of the total (or after a minute, without a total)."""
        self.n += n
        if self.total and 10 * self.n >= self.next_tenth * self.total:
            self.next_tenth = 10 * self.n // self.total + 1
            if self.n < self.total:
                self._line()
        elif not self.total and time.time() - self.last >= 60:
            self._line()

    def close(self):
        """Write the last line (once)."""
        if not self.closed:
            self.closed = True
            self._line()


def parse_shard(text):
    """'K/N' -> (K, N): this machine's part K (0-based) of N (SLURM-array style, e.g. --shard $SLURM_ARRAY_TASK_ID/8);
    ValueError with the reason for anything else."""
    try:
        k, n = (int(part) for part in str(text).split('/'))
    except ValueError:
        raise ValueError(f'--shard {text!r}: write it as K/N, e.g. 0/4 for the first of four parts') from None
    if n < 1 or not 0 <= k < n:
        raise ValueError(f'--shard {text}: K must lie in 0..N-1 and N be at least 1')
    return k, n
