"""The training recipe's checks and its optimiser: which option combinations can train a model of a given config,
which loss a fine-tuning or resumed run continues with, and the optimiser over the encoders' parameter groups."""
import dataclasses
import logging

import torch

from . import networks
from .config import ModelConfigError

logger = logging.getLogger(__name__)
NEGATIVE_MODES = ('sampled', 'in_batch')


def training_loss(opt, config):
    """The config a training run continues with: a run that starts from another's weights (fine-tuning,
    ``--pretrained_name``) trains with its own ``--loss`` (the journal's fine-tuning changes the loss); a resumed run
    (``--continue_train``) keeps the stored one unless ``--loss`` is typed."""
    if not opt.isTrain or config.loss == opt.loss:
        return config
    if opt.continue_train and 'loss' not in getattr(opt, 'explicit', ()):
        opt.loss = config.loss
        return config
    logger.info('training with --loss %s (the checkpoint was trained with %s)', opt.loss, config.loss)
    return dataclasses.replace(config, loss=opt.loss)


def check_training_combination(opt, config):
    """Refuse training options that cannot work with ``config`` (ModelConfigError with the reason)."""
    in_batch = opt.negatives == 'in_batch'
    if opt.n_negatives < 1:
        raise ModelConfigError('--n_negatives must be at least 1')
    if in_batch and opt.batch_size <= opt.n_negatives:
        raise ModelConfigError(f'--negatives in_batch takes the negatives from the other anchors of a batch, so '
                               f'--batch_size ({opt.batch_size}) must exceed --n_negatives ({opt.n_negatives}); raise '
                               f'--batch_size, lower --n_negatives or use --negatives sampled')
    if opt.loss in ('infonce', 'infonce_paired', 'fake_pairs') and not opt.temperature > 0:
        raise ModelConfigError(f'--temperature must be above 0 (the logits are divided by it), got {opt.temperature}')
    if opt.loss == 'fake_pairs' and opt.dataset_mode != 'DFDC':
        raise ModelConfigError('--loss fake_pairs contrasts a real window with fake windows (each fake\'s voice with '
                               'its own face): it fine-tunes on a deepfake set, --dataset_mode DFDC with a '
                               '--split_file, after pre-training (--pretrained_name)')
    if config.compat != 'released':
        return
    if in_batch:
        raise ModelConfigError('--encoder_compat released adds position vector b to sample b of a batch, so with '
                               '--negatives in_batch voice b finds face b by its position alone and learns nothing '
                               'about people (docs/training.md: training loss solved, validation AUC 0.505); train '
                               'released-mode encoders with --negatives sampled (as --recipe released does), or use '
                               '--encoder_compat fixed')
    per_pass = opt.batch_size * opt.n_negatives
    if per_pass > networks.RELEASED_MAX_BATCH:
        raise ModelConfigError(f'--encoder_compat released encodes at most {networks.RELEASED_MAX_BATCH} faces per '
                               f'pass (position embedding by batch index), but --batch_size {opt.batch_size} with its '
                               f'negatives puts {per_pass} faces in one pass; lower --batch_size or use '
                               f'--encoder_compat fixed')


OPTIMIZERS = ('adam', 'adamw')


def make_optimizer(opt, groups):
    """``--optimizer`` over parameter ``groups``: Adam (betas ``--beta1``, ``--beta2``; ``--weight_decay`` added to
    the gradient, as torch's Adam does) or AdamW (decoupled weight decay, the journal's: betas 0.9 and 0.98, eps
    1e-8, weight decay 0.2), both with ``--eps``."""
    kind = getattr(opt, 'optimizer', 'adam')
    betas = (opt.beta1, getattr(opt, 'beta2', 0.999))
    eps, decay = getattr(opt, 'eps', 1e-8), getattr(opt, 'weight_decay', 0.0)
    cls = {'adam': torch.optim.Adam, 'adamw': torch.optim.AdamW}[kind]
    return cls(groups, lr=opt.lr, betas=betas, eps=eps, weight_decay=decay)
