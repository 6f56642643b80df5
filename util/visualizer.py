"""Training logs and displays: loss_log.txt, metrics.jsonl, an HTML page, and visdom plots.

Always written to ``<checkpoints_dir>/<name>/`` (appended to, so a resumed run continues them):

* ``loss_log.txt``: the human loss and validation lines;
* ``metrics.jsonl``: one JSON object per event (``type`` train, val, collapse, collapse_end, ddp_check);
* ``web/index.html`` (unless ``--no_html``): loss and validation-AUC curves as PNG, and for every validation a
  few held-out faces captioned with their distance to their own voice and to other voices.

With ``--display_id`` > 0 the losses (at every print step) and the validation AUC (at every validation) are also
plotted on the visdom server ``--display_server``:``--display_port`` in environment ``--display_env``, in the
windows ``<name>_losses`` and ``<name>_val_auc``. visdom is imported only then. If it is missing or the server
does not answer, ONE warning says how to start one (``bash scripts/visdom_server.sh``) and training goes on
without it; ``--display_id 0`` turns it off.
"""
import json
import logging
import os
import time

import numpy as np
from PIL import Image
from tqdm import tqdm

from util import plots, util
from util.html import HTML

logger = logging.getLogger(__name__)

VISDOM_HINT = ('start one with "bash scripts/visdom_server.sh" (works offline; see the README, "Watching '
               'training"), or turn plotting off with --display_id 0')


class Visualizer:
    """Writes loss lines, validation results, the HTML page and the visdom plots of a training run."""

    def __init__(self, opt, enabled=True):
        self.opt = opt
        self.enabled = enabled  # False on every DDP rank but 0
        self.name = opt.name
        self.expr_dir = os.path.join(opt.checkpoints_dir, opt.name)
        self.log_name = os.path.join(self.expr_dir, 'loss_log.txt')
        self.metrics_name = os.path.join(self.expr_dir, 'metrics.jsonl')
        self.web_dir = os.path.join(self.expr_dir, 'web')
        self.use_html = enabled and not opt.no_html
        self.display_id = opt.display_id if enabled else 0
        self.vis = None
        self.loss_history = {'x': [], 'y': [], 'names': None}
        self.auc_history = {'x': [], 'y': []}
        self.samples_file = os.path.join(self.web_dir, 'samples.json')
        self.samples = self._load_samples()  # per validation: [epoch, [[image path, caption], ...]]
        self.page_failed = False  # a page write refused by the disk (warned once)
        if self.enabled:
            util.mkdirs(self.expr_dir)
            end_partial_line(self.metrics_name)   # a run killed mid-line leaves one; the next record starts anew
            with open(self.log_name, 'a') as log_file:
                log_file.write(f'================ Training Loss ({time.strftime("%c")}) ================\n')
        if self.display_id > 0:
            self.vis = self._connect()

    # -- visdom -------------------------------------------------------------------------------------------------------
    def _connect(self):
        """A visdom client if the server answers; otherwise one warning and None."""
        server = f'{self.opt.display_server}:{self.opt.display_port}'
        try:
            import visdom
        except ImportError:
            logger.warning('visdom is not installed (pip install -r requirements.txt): no live plots; the HTML page '
                           'and the logs are still written')
            return None
        visdom_logger = logging.getLogger('visdom')  # its client logs chatter at WARNING while connecting
        level = visdom_logger.level
        visdom_logger.setLevel(logging.ERROR + 1)
        try:
            vis = visdom.Visdom(server=self.opt.display_server, port=self.opt.display_port, env=self.opt.display_env,
                                use_incoming_socket=False, raise_exceptions=True)
            if vis.check_connection(timeout_seconds=3):
                logger.info('plotting to visdom at %s, environment %r', server, self.opt.display_env)
                return vis
        except Exception:  # noqa: BLE001 - any failure to reach the server means: no visdom
            pass
        finally:
            visdom_logger.setLevel(level)
        logger.warning('no visdom server answers at %s, so training goes on without live plots; %s', server,
                       VISDOM_HINT)
        return None

    def _send(self, plot):
        """Run one visdom call; on failure warn once and stop using visdom."""
        if self.vis is None:
            return
        try:
            plot(self.vis)
        except Exception as err:  # noqa: BLE001 - the server went away or refused: keep training
            logger.warning('visdom stopped answering (%s); training goes on without live plots; %s',
                           type(err).__name__, VISDOM_HINT)
            self.vis = None

    def plot_current_losses(self, epoch, counter_ratio, losses):
        """Add one point per loss at x = epoch + fraction of the epoch done, and redraw the loss window."""
        history = self.loss_history
        history['names'] = history['names'] or list(losses)
        history['x'].append(epoch + counter_ratio)
        history['y'].append([losses[k] for k in history['names']])
        names = history['names']
        x = np.stack([np.array(history['x'])] * len(names), 1)
        y = np.array(history['y'])
        self._send(lambda vis: vis.line(X=x, Y=y, win=f'{self.name}_losses', env=self.opt.display_env,
                                        opts={'title': f'{self.name} losses', 'legend': names, 'xlabel': 'epoch',
                                              'ylabel': 'value'}))

    def show_collapse(self, text):
        """Put the collapse report in its own visdom text window (replaced by each new report)."""
        html = text.replace('&', '&amp;').replace('<', '&lt;').replace('>', '&gt;').replace('\n', '<br>')
        self._send(lambda vis: vis.text(html, win=f'{self.name}_collapse', env=self.opt.display_env,
                                        opts={'title': f'{self.name}: collapse monitor'}))

    def plot_validation(self, epoch, auc):
        """Add ``epoch``'s validation AUC to the history and redraw the visdom AUC window."""
        self.auc_history['x'].append(epoch)
        self.auc_history['y'].append(auc)
        x, y = np.array(self.auc_history['x'], dtype=float), np.array(self.auc_history['y'])
        self._send(lambda vis: vis.line(X=x, Y=y, win=f'{self.name}_val_auc', env=self.opt.display_env,
                                        opts={'title': f'{self.name} validation AUC', 'xlabel': 'epoch',
                                              'ylabel': 'AUC'}))

    # -- logs ---------------------------------------------------------------------------------------------------------
    def _append_json(self, record):
        with open(self.metrics_name, 'a') as handle:
            handle.write(json.dumps(util.strict_json(record), allow_nan=False) + '\n')

    def log_record(self, record):
        """Append one JSON object (with a 'type' key) to metrics.jsonl."""
        if self.enabled:
            self._append_json({**record, 'time': time.time()})

    def print_current_losses(self, epoch, epoch_iter, total_iters, losses, t_comp, t_data, lr, counter_ratio=0.0):
        """One loss line (console and loss_log.txt), one 'train' record in metrics.jsonl, one visdom point.

        t_comp: seconds of computation per step, t_data: seconds waiting for data per step; counter_ratio: the
        fraction of the epoch done (x position of the visdom point).
        """
        if not self.enabled:
            return
        message = (f'(epoch: {epoch}, iters: {epoch_iter}, total: {total_iters}, time: {t_comp:.3f}, '
                   f'data: {t_data:.3f}, lr: {lr:.2e}) ')
        message += ' '.join(f'{name}: {value:.4f}' for name, value in losses.items())
        tqdm.write(message)
        with open(self.log_name, 'a') as log_file:
            log_file.write(message + '\n')
        self._append_json({'type': 'train', 'time': time.time(), 'epoch': epoch, 'epoch_iter': epoch_iter,
                           'total_iters': total_iters, 'lr': lr, 't_comp': t_comp, 't_data': t_data,
                           'losses': dict(losses)})
        self.plot_current_losses(epoch, counter_ratio, losses)

    def print_validation(self, epoch, total_iters, results, samples=()):
        """One validation line and 'val' record, the visdom AUC point and the HTML page.

        ``samples``: a few validation faces as (uint8 HxWx3 image, distance to own voice, mean distance to the
        voices of other identities).
        """
        if not self.enabled:
            return
        message = (f'(epoch: {epoch}, total: {total_iters}) validation AUC {results["auc"]:.4f}  '
                   f'AP {results["ap"]:.4f}  EER {results["eer"]:.4f}  '
                   f'({results["n_real"]} real / {results["n_fake"]} mismatched pairs)')
        tqdm.write(message)
        with open(self.log_name, 'a') as log_file:
            log_file.write(message + '\n')
        self._append_json({'type': 'val', 'time': time.time(), 'epoch': epoch, 'total_iters': total_iters,
                           **results})
        self.plot_validation(epoch, results['auc'])
        self.update_page(epoch, samples)

    def report_collapse(self, event, advice=''):
        """A collapse event of ``util.collapse.CollapseMonitor``: the loss log, a metrics.jsonl record, the visdom text
        window and the HTML page. Returns the human text (the caller decides whether it is a warning)."""
        if event['type'] == 'collapse':
            text = (f'COLLAPSE (epoch {event["epoch"]}, step {event["total_iters"]}): the embeddings hardly depend on '
                    f'the input: ' + '; '.join(event['reasons']) + '.')
            if advice:
                text += ' ' + advice
        else:
            text = (f'collapse over (epoch {event["epoch"]}, step {event["total_iters"]}): validation AUC '
                    f'{event["auc"]:.4f}, the distances spread again')
        if not self.enabled:
            return text
        with open(self.log_name, 'a') as log_file:
            log_file.write(text + '\n')
        self._append_json({**event, 'time': time.time(), 'message': text})
        self.show_collapse(text)
        self.update_page()
        return text

    def update_page(self, epoch=None, samples=None):
        """Save ``epoch``'s validation faces (when given) and rewrite the page; a disk that refuses costs the page,
        with one warning, never the training."""
        if not self.use_html:
            return
        try:
            if samples is not None:
                self.save_samples(epoch, samples)
            self.write_html()
        except OSError as err:
            if not self.page_failed:
                logging.getLogger(__name__).warning('the HTML page in %s was not updated (%s); training goes on',
                                                    self.web_dir, err.strerror or err)
            self.page_failed = True

    # -- HTML ---------------------------------------------------------------------------------------------------------
    def _load_samples(self):
        """Sample lists of earlier validations (a resumed run keeps showing them)."""
        if not self.use_html or not os.path.isfile(self.samples_file):
            return []
        try:
            with open(self.samples_file) as handle:
                return [tuple(entry) for entry in json.load(handle)]
        except (OSError, ValueError):
            return []

    def save_samples(self, epoch, samples):
        """Save ``epoch``'s validation faces as captioned PNGs for the page and keep the list in samples.json."""
        entries = []
        size = self.opt.display_winsize
        for i, (image, d_own, d_other) in enumerate(samples):
            rel = f'images/epoch{epoch:03d}_face{i}.png'
            util.mkdirs(os.path.join(self.web_dir, 'images'))
            Image.fromarray(image).resize((size, size), Image.BICUBIC).save(os.path.join(self.web_dir, rel))
            entries.append((rel, f'own voice d={d_own:.2f}; other voices d={d_other:.2f}'))
        self.samples = [s for s in self.samples if s[0] != epoch] + [(epoch, entries)]
        util.atomic_write_text(self.samples_file, json.dumps(self.samples))

    def write_html(self):
        """Redraw the curves from metrics.jsonl (the whole run, resumed parts included) and rewrite the page."""
        records = read_metrics(self.metrics_name)
        train = [r for r in records if r['type'] == 'train']
        val = [r for r in records if r['type'] == 'val']
        page = HTML(self.web_dir, f'VFD training: {self.name}', refresh=60)
        page.add_header(f'{self.name}: {len(train)} loss points, {len(val)} validations '
                        f'(updated {time.strftime("%Y-%m-%d %H:%M")})')
        events = [r for r in records if r['type'] in ('collapse', 'collapse_end')]
        if events:
            state = 'COLLAPSED' if events[-1]['type'] == 'collapse' else 'learning again after a collapse'
            page.add_header(f'Collapse monitor: {state}')
            page.add_table(['epoch', 'step', 'what was seen'],
                           [[r['epoch'], r['total_iters'], r.get('message', '')] for r in reversed(events)])
        if train:
            names = list(train[-1]['losses'])
            series = {k: ([r['total_iters'] for r in train if k in r['losses']],
                          [r['losses'][k] for r in train if k in r['losses']]) for k in names}
            plots.line_plot(os.path.join(self.web_dir, 'images', 'losses.png'), series, 'losses', 'step', 'value')
        if val:
            plots.line_plot(os.path.join(self.web_dir, 'images', 'val_auc.png'),
                            {'validation AUC': ([r['epoch'] for r in val],
                                                [np.nan if r['auc'] is None else r['auc'] for r in val])},
                            'validation AUC (held-out identities)', 'epoch', 'AUC')
        page.add_images([p for p in ('images/losses.png', 'images/val_auc.png')
                         if os.path.isfile(os.path.join(self.web_dir, p))], ['losses', 'validation AUC'], width=480)
        if val:
            page.add_table(['epoch', 'AUC', 'AP', 'EER', 'EER threshold'],
                           [[r['epoch'], *(measured(r.get(k), 4) for k in ('auc', 'ap', 'eer')),
                             measured(r.get('eer_threshold'), 3)] for r in reversed(val)])
        for epoch, entries in sorted(self.samples, reverse=True):
            page.add_header(f'epoch {epoch}: validation faces and voice-face distances')
            page.add_images([e[0] for e in entries], [e[1] for e in entries],
                            width=self.opt.display_winsize)
        page.save()


def measured(value, digits):
    """A metric for the page: the number, or 'not measurable' for a missing or non-finite one."""
    if value is None or not np.isfinite(value):
        return 'not measurable'
    return f'{value:.{digits}f}'


def end_partial_line(path):
    """Append a newline to ``path`` if it does not end with one (so that appended records stay one per line)."""
    if os.path.isfile(path) and os.path.getsize(path):
        with open(path, 'rb+') as handle:
            handle.seek(-1, os.SEEK_END)
            if handle.read(1) != b'\n':
                handle.write(b'\n')


def read_metrics(path):
    """The records of a metrics.jsonl file (an unfinished last line is skipped)."""
    records = []
    if os.path.isfile(path):
        with open(path) as handle:
            for line in handle:
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError:
                    continue
    return records
