"""Training logs and displays: loss_log.txt, metrics.jsonl, an HTML page, and visdom plots.

Always written to ``<checkpoints_dir>/<name>/`` (appended to, so a resumed run continues them):

* ``loss_log.txt``: the human loss and validation lines;
* ``metrics.jsonl``: one JSON object per event (``type`` train, val, collapse, collapse_end, ddp_check); strict
  JSON (a value that is not measurable is null);
* ``web/index.html`` (unless ``--no_html``): the loss, the distances, the monitor values and the validation AUC in
  separate panels against the training step, and for every validation a few held-out faces captioned with their
  distance to their own voice and to other voices.

With ``--display_id`` > 0 the same four curves are plotted on the visdom server ``--display_server``:
``--display_port`` in environment ``--display_env``, in the windows ``<name>_loss``, ``<name>_distances``,
``<name>_monitor`` and ``<name>_val_auc`` (x: the training step), starting from the run's history when it resumes;
every validation and the end of training have the server save the environment. The sending happens in a
background thread (``util/live_plots.py``), so a slow or hung server never stalls training; if visdom is missing or
the server does not answer, ONE warning says how to start one (``bash scripts/visdom_server.sh``) and training goes
on; ``--display_id 0`` turns it off.
"""
import json
import logging
import os
import time

import numpy as np
from PIL import Image
from tqdm import tqdm

from util import plots, util
from util.live_plots import LivePlots
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
        self.live = None
        self.loss_history = []   # (training step, {loss name: value})
        self.auc_history = []    # (training step, validation AUC)
        self.samples_file = os.path.join(self.web_dir, 'samples.json')
        self.samples = self._load_samples()  # per validation: [epoch, [[image path, caption], ...]]
        self.page_failed = False  # a page write refused by the disk (warned once)
        self.drawn = {}           # panel image -> the points it was last drawn from (a page rewrite redraws no other)
        if self.enabled:
            util.mkdirs(self.expr_dir)
            end_partial_line(self.metrics_name)   # a run killed mid-line leaves one; the next record starts anew
            with open(self.log_name, 'a') as log_file:
                log_file.write(f'================ Training Loss ({time.strftime("%c")}) ================\n')
        if self.display_id > 0:
            self._history()
            self.live = LivePlots(opt.display_server, opt.display_port, opt.display_env, hint=VISDOM_HINT)

    # -- visdom -------------------------------------------------------------------------------------------------------
    def _history(self):
        """The run's loss and AUC points so far, from metrics.jsonl (a resumed run's plots start where it was)."""
        records = read_metrics(self.metrics_name) if os.path.isfile(self.metrics_name) else []
        for r in records:
            if r.get('type') == 'train':
                self.loss_history.append((r['total_iters'], r['losses']))
            elif r.get('type') == 'val':
                self.auc_history.append((r['total_iters'], r.get('auc')))

    def _plot(self, window, title, points, names, ylabel):
        """Redraw visdom window ``<name>_<window>``: one trace per name over the training step."""
        names = [n for n in names if any(n in values for _, values in points)]
        if self.live is None or not names:
            return
        x = np.array([step for step, _ in points], dtype=float)
        y = np.array([[np.nan if values.get(n) is None else values[n] for n in names] for _, values in points],
                     dtype=float)
        opts = {'title': f'{self.name}: {title}', 'xlabel': 'training step', 'ylabel': ylabel}
        if len(names) > 1:
            opts['legend'] = names
            x = np.stack([x] * len(names), 1)
        else:
            y = y[:, 0]
        env = self.opt.display_env
        self.live.submit(lambda vis: vis.line(X=x, Y=y, win=f'{self.name}_{window}', env=env, opts=opts))

    def plot_current_losses(self, total_iters, losses):
        """Add the step's losses and redraw the loss, distance and monitor windows (the distances, in the hundreds,
        would flatten the loss in a shared window)."""
        self.loss_history.append((total_iters, dict(losses)))
        groups = loss_groups(losses)
        for window, title, ylabel in LOSS_WINDOWS:
            self._plot(window, title, self.loss_history, groups[window], ylabel)

    def show_collapse(self, text):
        """Put the collapse report in its own visdom text window (replaced by each new report)."""
        if self.live is None:
            return
        html = text.replace('&', '&amp;').replace('<', '&lt;').replace('>', '&gt;').replace('\n', '<br>')
        env, win = self.opt.display_env, f'{self.name}_collapse'
        self.live.submit(lambda vis: vis.text(html, win=win, env=env, opts={'title': f'{self.name}: collapse monitor'}))

    def plot_validation(self, total_iters, auc):
        """Add a validation AUC at ``total_iters`` and redraw the AUC window; then have the server save the
        environment to its --env_path, so that a restarted server shows the run's plots."""
        self.auc_history.append((total_iters, auc))
        self._plot('val_auc', 'validation AUC (held-out identities)', [(s, {'AUC': a}) for s, a in self.auc_history],
                   ['AUC'], 'AUC')
        self.save_env()

    def save_env(self):
        """Ask the server to store the run's environment (``<env_path>/<display_env>.json``)."""
        if self.live is not None:
            env = self.opt.display_env
            self.live.submit(lambda vis: vis.save([env]))

    def close(self):
        """Save the environment and let the last plots go out (a few seconds at most)."""
        if self.live is not None:
            self.save_env()
            self.live.close()

    # -- logs ---------------------------------------------------------------------------------------------------------
    def _append_json(self, record):
        with open(self.metrics_name, 'a') as handle:
            handle.write(json.dumps(util.strict_json(record), allow_nan=False) + '\n')

    def log_record(self, record):
        """Append one JSON object (with a 'type' key) to metrics.jsonl."""
        if self.enabled:
            self._append_json({**record, 'time': time.time()})

    def print_current_losses(self, epoch, epoch_iter, total_iters, losses, t_comp, t_data, lr):
        """One loss line (console and loss_log.txt), one 'train' record in metrics.jsonl, one visdom point.

        t_comp: seconds of computation per step, t_data: seconds waiting for data per step; the visdom point goes at
        x = ``total_iters`` (the training step, the x-axis of the HTML page too).
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
        self.plot_current_losses(total_iters, losses)

    def print_validation(self, epoch, total_iters, results, samples=()):
        """One validation line and 'val' record, the visdom AUC point and the HTML page.

        ``samples``: a few validation faces as (uint8 HxWx3 image, distance to own voice, mean distance to the
        voices of other identities).
        """
        if not self.enabled:
            return
        if results.get('not_measurable'):
            scores = (f'validation AUC, AP and EER not measurable ({results["not_measurable"]}); validation loss '
                      f'{measured(results.get("val_loss"), 4)}')
        else:
            scores = (f'validation AUC {results["auc"]:.4f}  AP {results["ap"]:.4f}  EER {results["eer"]:.4f}')
        message = (f'(epoch: {epoch}, total: {total_iters}) {scores}  '
                   f'({results["n_real"]} real / {results["n_fake"]} mismatched pairs)')
        tqdm.write(message)
        with open(self.log_name, 'a') as log_file:
            log_file.write(message + '\n')
        self._append_json({'type': 'val', 'time': time.time(), 'epoch': epoch, 'total_iters': total_iters,
                           **results})
        self.plot_validation(total_iters, results['auc'])
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
                logger.warning('the HTML page in %s was not updated (%s); training goes on', self.web_dir,
                               err.strerror or err)
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
            entries.append((rel, face_caption(d_own, d_other)))
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
        panels = []   # (image, caption): the loss, the distances and the monitor values apart, all against the step
        if train:
            for window, caption, ylabel in LOSS_WINDOWS:
                names = loss_groups(train[-1]['losses'])[window]
                if not names:
                    continue
                series = {k: ([r['total_iters'] for r in train if k in r['losses']],
                              [r['losses'][k] for r in train if k in r['losses']]) for k in names}
                self._draw(f'images/{window}.png', series, caption, ylabel)
                panels.append((f'images/{window}.png', caption))
        if val:
            self._draw('images/val_auc.png', {'validation AUC': ([r['total_iters'] for r in val],
                                                                [np.nan if r['auc'] is None else r['auc'] for r in val])},
                       'validation AUC (held-out identities)', 'AUC')
            panels.append(('images/val_auc.png', 'validation AUC'))
        page.add_images([p for p, _ in panels], [c for _, c in panels], width=480)
        if val:
            page.add_table(['epoch', 'AUC', 'AP', 'EER', 'EER threshold'],
                           [[r['epoch'], *(measured(r.get(k), 4) for k in ('auc', 'ap', 'eer')),
                             measured(r.get('eer_threshold'), 3)] for r in reversed(val)])
        for epoch, entries in sorted(self.samples, reverse=True):
            page.add_header(f'epoch {epoch}: validation faces and voice-face distances')
            page.add_images([e[0] for e in entries], [e[1] for e in entries],
                            width=self.opt.display_winsize)
        page.save()

    def _draw(self, image, series, title, ylabel):
        """Draw one panel of the page against the training step, unless the same points are already drawn in it (a
        collapse report rewrites the page after the validation's rewrite with no new point: a redraw costs a
        fraction of a second per panel)."""
        path = os.path.join(self.web_dir, image)
        key = (title, ylabel, json.dumps(series))
        if self.drawn.get(image) == key and os.path.isfile(path):
            return
        plots.line_plot(path, series, title, 'training step', ylabel)
        self.drawn[image] = key


def face_caption(d_own, d_other):
    """The caption of a validation face: its distance to its own voice and, where the voice was also paired with
    other faces (pre-training), their mean distance; fine-tuning pairs a voice with its own video's face only."""
    if d_own is None or not np.isfinite(d_own):
        return 'distance not measured'
    if d_other is None or not np.isfinite(d_other):
        return f'own voice d={d_own:.2f} (this voice was paired with no other face)'
    return f'own voice d={d_own:.2f}; other voices d={d_other:.2f}'


# the loss windows (visdom) and panels (HTML page): (name, title, y-axis label), the names of loss_groups
LOSS_WINDOWS = (('loss', 'training loss', 'loss'),
                ('distances', 'voice-face distances (own face, other faces)', 'distance'),
                ('monitor', 'active share and embedding spread', 'value'))


def loss_groups(losses):
    """The loss names of one step by window: 'loss' (what is optimised), 'distances' (dist_*), 'monitor' (the
    rest: active share, spread, skipped in-batch terms)."""
    names = list(losses)
    distances = [n for n in names if n.startswith('dist_')]
    monitor = [n for n in names if n in ('active', 'spread', 'in_batch_skipped')]
    return {'loss': [n for n in names if n not in distances and n not in monitor], 'distances': distances,
            'monitor': monitor}


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
