"""Training logs: the human ``loss_log.txt`` and one JSON object per event in ``metrics.jsonl``.

Both live in ``<checkpoints_dir>/<name>/`` and are appended to, so a resumed run continues them.
"""
import json
import logging
import os
import time

from tqdm import tqdm

from util import util

logger = logging.getLogger(__name__)


class Visualizer:
    """Writes loss lines and validation results of a training run."""

    def __init__(self, opt, enabled=True):
        self.opt = opt
        self.enabled = enabled  # False on every DDP rank but 0
        self.expr_dir = os.path.join(opt.checkpoints_dir, opt.name)
        self.log_name = os.path.join(self.expr_dir, 'loss_log.txt')
        self.metrics_name = os.path.join(self.expr_dir, 'metrics.jsonl')
        if self.enabled:
            util.mkdirs(self.expr_dir)
            with open(self.log_name, 'a') as log_file:
                log_file.write(f'================ Training Loss ({time.strftime("%c")}) ================\n')

    def _append_json(self, record):
        with open(self.metrics_name, 'a') as handle:
            handle.write(json.dumps(record) + '\n')

    def log_record(self, record):
        """Append one JSON object (with a 'type' key) to metrics.jsonl."""
        if self.enabled:
            self._append_json({**record, 'time': time.time()})

    def print_current_losses(self, epoch, epoch_iter, total_iters, losses, t_comp, t_data, lr):
        """One loss line (console and loss_log.txt) and one 'train' record in metrics.jsonl.

        t_comp: seconds of computation per step, t_data: seconds waiting for data per step.
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

    def print_validation(self, epoch, total_iters, results):
        """One validation line and one 'val' record (auc, ap, eer, eer_threshold, counts)."""
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
