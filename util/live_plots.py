"""Live plots on a visdom server, sent off the training thread so that a slow, hung or absent server never stalls
training.

Every plot call is a job for one background thread, through a bounded queue: when the server does not keep up
(stopped, overloaded, far away) the oldest waiting jobs are dropped, which loses nothing because each job redraws
its whole window from the run's history. The visdom client itself sends without a time limit, so only that thread
waits on it. One warning says when the server stopped answering (or never answered) and one line when it answers
again; plotting then goes on where the run is. visdom is imported in that thread, only when plotting is on.
"""
import collections
import logging
import threading
import urllib.error
import urllib.request

logger = logging.getLogger(__name__)

PROBE_SECONDS = 3.0   # how long the start-up check waits for the server's answer


def server_answers(server, port, timeout=PROBE_SECONDS):
    """Whether an HTTP server answers at ``server``:``port`` within ``timeout`` seconds (any status counts)."""
    url = server if '://' in server else f'http://{server}'
    try:
        with urllib.request.urlopen(f'{url}:{port}/', timeout=timeout):
            return True
    except urllib.error.HTTPError:
        return True
    except (OSError, ValueError):
        return False


class LivePlots:
    """A visdom connection run by a background thread. ``submit(job)`` never blocks: ``job(vis)`` runs later in the
    thread (``vis``: a ``visdom.Visdom``). ``hint``: how to start a server, for the warnings."""

    def __init__(self, server, port, env, hint='', max_waiting=16, probe=True):
        self.server, self.port, self.env, self.hint = server, port, env, hint
        self.jobs = collections.deque(maxlen=max_waiting)   # a full deque drops its oldest job
        self.ready = threading.Condition()
        self.dropped = 0
        self.failing = False       # the last job failed (warned once until one succeeds again)
        self.stalled = False       # jobs were dropped while the server did not answer (warned once)
        self.closed = False
        self.busy = False
        if probe and not server_answers(server, port):
            logger.warning('no visdom server answers at %s:%s, so training goes on without live plots for now '
                           '(they start when one answers); %s', server, port, hint)
            self.failing = True
        self.thread = threading.Thread(target=self._run, name='visdom-sender', daemon=True)
        self.thread.start()

    # -- the training thread's side --------------------------------------------------------------------------------
    def submit(self, job):
        """Queue ``job(vis)``; returns at once (dropping the oldest waiting job when the server does not keep up)."""
        with self.ready:
            if self.closed:
                return
            if len(self.jobs) == self.jobs.maxlen:
                self.dropped += 1
                self.stalled = self.stalled or self.failing
                if not self.stalled and not self.failing:   # one warning, whichever way the server failed
                    self.stalled = True
                    logger.warning('the visdom server at %s:%s is not answering; training goes on and the plots '
                                   'catch up when it answers again', self.server, self.port)
            self.jobs.append(job)
            self.ready.notify()

    def close(self, timeout=5.0):
        """Let the waiting jobs go out for at most ``timeout`` seconds (none when the server is not answering), then
        stop the thread (a daemon: a hung request does not keep the process alive)."""
        with self.ready:
            self.closed = True
            self.ready.notify()
            hopeless = self.failing or self.stalled
        self.thread.join(0 if hopeless else timeout)

    def idle(self):
        """Whether no job waits or runs (for tests and for flushing)."""
        with self.ready:
            return not self.jobs and not self.busy

    # -- the sender thread -----------------------------------------------------------------------------------------
    def _connect(self):
        try:
            import visdom
        except ImportError:
            logger.warning('visdom is not installed (pip install -r requirements.txt): no live plots; the HTML page '
                           'and the logs are still written')
            self.closed = True
            return None
        quiet = logging.getLogger('visdom')   # its client logs connection chatter at WARNING
        level = quiet.level
        quiet.setLevel(logging.ERROR + 1)
        try:
            vis = visdom.Visdom(server=self.server, port=self.port, env=self.env, use_incoming_socket=False,
                                raise_exceptions=True)
            return vis if vis.check_connection(timeout_seconds=PROBE_SECONDS) else None
        except Exception:  # noqa: BLE001 - any failure to reach the server means: not now
            return None
        finally:
            quiet.setLevel(level)

    def _run(self):
        vis = None
        while True:
            with self.ready:
                while not self.jobs and not self.closed:
                    self.ready.wait()
                if not self.jobs:
                    return
                job = self.jobs.popleft()
                self.busy = True
            try:
                vis = vis or self._connect()
                if vis is None:
                    raise ConnectionError('no answer')
                job(vis)
            except Exception as err:  # noqa: BLE001 - the server went away or refused: keep training
                if not self.failing:
                    logger.warning('visdom stopped answering (%s); training goes on, and the plots come back when '
                                   'the server does; %s', type(err).__name__, self.hint)
                self.failing, vis = True, None
            else:
                if self.failing or self.stalled:
                    logger.info('the visdom server at %s:%s answers again; live plots resume', self.server,
                                self.port)
                self.failing = self.stalled = False
            finally:
                with self.ready:
                    self.busy = False
