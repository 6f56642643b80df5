"""Train VFD: pull a clip's voice embedding towards its own face and away from other identities' faces.

    python train_DF.py --dataroot ./Dataset/Voxceleb2 --dataset_mode Vox_image --model DFD --no_flip --name NAME
    torchrun --nproc_per_node 4 train_DF.py ...          # one process per GPU (DistributedDataParallel)

Every ``--save_epoch_freq`` epochs it measures the validation AUC on the held-out identities and writes
``<epoch>_net_G_audio.pth``, ``<epoch>_net_G_video.pth``, ``latest_*`` and ``best_*`` (highest validation AUC) to
``<checkpoints_dir>/<name>/``, with the options, the identity split and the logs. ``--continue_train`` resumes.
Under torchrun only rank 0 logs, validates and writes. See ``python train_DF.py --help`` for every option.
"""
import dataclasses
import itertools
import logging
import os
import sys
import time

import numpy as np
from tqdm import tqdm

from data import DatasetError, DatasetLoader, SkipLog, create_dataset, transport
from models import MODEL_ERRORS, TrainingError, checkpoint, create_model, load_model, losses
from options.base_options import record_model
from options.train_options import TrainOptions
from util import collapse, distributed, metrics, runs, util
from util.visualizer import Visualizer

logger = logging.getLogger('train_DF')


def train(opt):
    """Train, validate and save as the options say; returns the last validation results (rank 0) or None."""
    lock = runs.RunLock(os.path.join(opt.checkpoints_dir, opt.name))
    if distributed.is_main(opt):   # one training per folder; rank 0 holds the lock for all ranks
        lock.acquire(' '.join(sys.argv))
    try:
        distributed.setup(opt)
        run = start_run(opt)
        try:
            for epoch in range(run.epoch, run.last_epoch + 1):
                run_epoch(run, epoch)
                end_of_epoch(run, epoch)
        finally:
            run.visualizer.close()   # the last plots out and the visdom environment saved (a few seconds at most)
        distributed.barrier(opt)
        distributed.cleanup(opt)
    finally:
        lock.release()
    return run.results


@dataclasses.dataclass
class Run:
    """What the training loop carries from step to step: the parts, and the counters saved with the training state."""

    opt: object
    model: object
    train_loader: object
    val_loader: object = None          # rank 0, when the dataset has a validation part
    recalib_loader: object = None      # rank 0: a shuffled view of the training set for BatchNorm statistics
    visualizer: object = None
    monitor: object = None             # rank 0: the collapse monitor
    main: bool = True
    epoch: int = 1                     # the epoch to run next
    start_batch: int = 0               # batches of that epoch already done (resuming inside an epoch)
    total_iters: int = 0
    best_auc: float = -1.0
    best_val_loss: float = float('inf')   # what picks best_* when the validation AUC is not measurable
    last_good: tuple = None            # (epoch, AUC) of the last validation that found no collapse
    results: dict = None               # the last validation results
    last_epoch: int = 0
    epoch_start: float = 0.0


def start_run(opt):
    """Seed, build (or load) the model, then the loaders, the logs and the counters (resumed where asked)."""
    main = distributed.is_main(opt)
    if not main:
        logging.getLogger().setLevel(logging.WARNING)
    logger.info('commit %s', util.git_commit())
    util.seed_everything(opt.seed + opt.rank)
    util.set_deterministic(opt.deterministic)
    expr_dir = os.path.join(opt.checkpoints_dir, opt.name)
    if main and os.path.isdir(expr_dir):
        stale = runs.remove_stale_temporaries(expr_dir)
        if stale:
            logger.info('removed %d temporary file(s) that an interrupted write left in %s', stale, expr_dir)
    if opt.continue_train:
        model = load_model(opt, expr_dir, opt.epoch)
    elif opt.pretrained_name:   # fine-tuning starts from a trained model's weights and config, as a run of its own
        model = load_model(opt, os.path.join(opt.checkpoints_dir, opt.pretrained_name), opt.pretrained_epoch)
        model.run_id = checkpoint.new_run_id()
    else:
        model = create_model(opt)
    model.setup(opt)
    logger.info('model: %s', model.config.describe())
    if main:   # the option record shows the sizes the model has, not the flags' defaults
        record_model(opt, model.config, 'the checkpoint' if opt.continue_train or opt.pretrained_name else
                     'the model config')
    skip_log = SkipLog(os.path.join(expr_dir, 'skipped_samples.csv' if main else
                                    f'skipped_samples.rank{opt.rank}.csv')) if opt.skip_bad else None
    run = Run(opt=opt, model=model, main=main, epoch=opt.epoch_count, last_epoch=opt.n_epochs + opt.n_epochs_decay,
              train_loader=create_dataset(opt, 'train', **transport.dataset_args(model.config, opt, 'train'),
                                          rank=opt.rank,
                                          world_size=opt.world_size, skip_log=skip_log))
    if main:
        dataset = run.train_loader.dataset
        write_split(opt, dataset)
        if dataset.has_validation():
            run.val_loader = create_dataset(opt, 'val', **transport.dataset_args(model.config, opt, 'val'),
                                            shuffle=False,
                                            skip_log=skip_log)
            warn_about_validation(run.val_loader.dataset.label_counts())
        else:
            logger.warning('no validation data (--val_ratio 0, or no val part in --split_file): no validation AUC, '
                           'no best checkpoint, no threshold stored with the checkpoints')
        run.recalib_loader = DatasetLoader(dataset, opt, shuffle=True, skip_log=skip_log,
                                           transport=run.train_loader.transport)
        util.check_writable(expr_dir, 'the checkpoints', need_bytes=model.bytes_per_save())  # before hours of work
        run.monitor = collapse.CollapseMonitor()
    logger.info('%d training clips (%d per process), %d validation pairs', len(run.train_loader.dataset),
                len(run.train_loader), len(run.val_loader) if run.val_loader else 0)
    if opt.continue_train:
        counters = model.load_training_state(opt.epoch)
        run.epoch, run.start_batch = counters['epoch'], counters['epoch_iter']
        run.total_iters, run.best_auc = counters['total_iters'], counters.get('best_auc', -1.0)
        run.best_val_loss = counters.get('best_val_loss', float('inf'))
        logger.info('resuming at epoch %d, step %d of the epoch (%d steps done)', run.epoch, run.start_batch,
                    run.total_iters)
    run.visualizer = Visualizer(opt, enabled=main)
    # the negatives flags are the model's (a model without them, e.g. the template, takes its own batch's)
    negatives, negatives_scope = getattr(opt, 'negatives', 'in_batch'), getattr(opt, 'negatives_scope', 'local')
    sync_bn = bool(getattr(opt, 'sync_bn', False))
    scope = ('the global batch' if negatives_scope == 'global' else "each process's own batch") \
        if negatives == 'in_batch' else f'{opt.n_negatives} sampled per anchor'
    logger.info('global batch: %d process(es) x %d = %d anchors per step; negatives from %s; BatchNorm statistics %s',
                opt.world_size, opt.batch_size, opt.world_size * opt.batch_size, scope,
                'over the global batch (--sync_bn)' if sync_bn or opt.world_size == 1 else 'per process')
    run.visualizer.log_record({'type': 'run', 'world_size': opt.world_size, 'batch_size': opt.batch_size,
                               'global_batch': opt.world_size * opt.batch_size, 'negatives': negatives,
                               'negatives_scope': negatives_scope, 'sync_bn': sync_bn})
    return run


def run_epoch(run, epoch):
    """One pass over the training set: a step per batch, a loss line every ``--print_freq`` steps, the latest
    checkpoint every ``--save_latest_freq`` steps."""
    opt, model = run.opt, run.model
    run.epoch_start = time.time()
    run.train_loader.set_epoch(epoch, run.start_batch)
    epoch_iter, run.start_batch = run.start_batch, 0
    model.train()
    t_data = t_comp = 0.0
    t_mark = time.time()
    bar = util.progress(total=run.train_loader.num_batches() + epoch_iter, initial=epoch_iter,
                        desc=f'epoch {epoch}/{run.last_epoch}', disable=not run.main)
    steps = max(1, run.train_loader.num_batches() + epoch_iter)
    for batch in run.train_loader:
        t_loaded = time.time()
        model.apply_warmup(run.total_iters + 1, progress=epoch - 1 + epoch_iter / steps)
        model.set_input(batch)
        model.optimize_parameters()
        epoch_iter += 1
        run.total_iters += 1
        t_now = time.time()
        t_data, t_comp, t_mark = t_data + (t_loaded - t_mark), t_comp + (t_now - t_loaded), t_now
        bar.update()
        if run.total_iters % opt.print_freq == 0:
            stop_if_nonfinite(run, epoch, 'at a print step')
            if run.main:
                report_losses(run, epoch, epoch_iter, bar, t_comp, t_data)
            t_data = t_comp = 0.0
        if opt.save_latest_freq and run.total_iters % opt.save_latest_freq == 0:
            stop_if_nonfinite(run, epoch, 'before saving')
            if run.main:
                tqdm.write(f'saving the latest model (epoch {epoch}, total_iters {run.total_iters})')
                model.save_networks('latest', epoch=epoch, total_iters=run.total_iters)
                model.save_training_state('latest', epoch=epoch, epoch_iter=epoch_iter, total_iters=run.total_iters,
                                          best_auc=run.best_auc, best_val_loss=run.best_val_loss)
    bar.close()


def end_of_epoch(run, epoch):
    """Every ``--save_epoch_freq`` epochs (and the last): check the ranks agree, recompute the BatchNorm statistics,
    validate and save; then step the learning rate and save the training state."""
    opt, model = run.opt, run.model
    checkpoint_epoch = epoch % opt.save_epoch_freq == 0 or epoch == run.last_epoch
    stop_if_nonfinite(run, epoch, 'at the end of the epoch')
    if checkpoint_epoch and opt.world_size > 1:
        check_ranks_agree(run, epoch)
    if checkpoint_epoch and run.main:
        validate_and_save(run, epoch)
    stop = (run.main and opt.stop_on_collapse > 0 and checkpoint_epoch
            and run.monitor.collapsed_validations >= opt.stop_on_collapse)
    if checkpoint_epoch and distributed.broadcast(opt, stop):
        raise TrainingError(collapse_stop_message(opt, run.monitor.collapsed_validations if run.main else 0,
                                                  run.last_good))
    auc = distributed.broadcast(opt, run.results['auc'] if run.results else None) if checkpoint_epoch else None
    model.update_learning_rate(auc if auc is not None and np.isfinite(auc) else None)
    if checkpoint_epoch and run.main:
        model.save_training_state('latest', epoch=epoch + 1, epoch_iter=0, total_iters=run.total_iters,
                                  best_auc=run.best_auc, best_val_loss=run.best_val_loss)
    logger.info('end of epoch %d / %d \t time taken: %.0f s', epoch, run.last_epoch, time.time() - run.epoch_start)


def validate_and_save(run, epoch):
    """Rank 0: BatchNorm statistics, validation, ``<epoch>``, ``latest`` and (a new best that is not collapsed)
    ``best`` network files."""
    opt, model = run.opt, run.model
    if opt.bn_recalib_batches > 0:
        run.recalib_loader.set_epoch(0)
        used = model.recalibrate_batch_norm(itertools.islice(run.recalib_loader, opt.bn_recalib_batches))
        logger.info('BatchNorm statistics recomputed over %d training batches', used)
    facts = {'epoch': epoch, 'total_iters': run.total_iters}
    collapsed = False
    if run.val_loader is not None:
        run.results, samples = validate(model, run.val_loader)
        run.visualizer.print_validation(epoch, run.total_iters, run.results, samples)
        facts['val'] = run.results
        event = run.monitor.observe_validation(run.results['auc'], run.results['distance_spread'], epoch,
                                               run.total_iters)
        report_collapse(event, run.visualizer, opt)
        collapsed = run.monitor.collapsed_validations > 0
    logger.info('saving the model at the end of epoch %d, iters %d', epoch, run.total_iters)
    model.save_networks(epoch, **facts)
    model.save_networks('latest', **facts)
    if run.results is not None and not collapsed:
        run.last_good = (epoch, run.results['auc'])
        if np.isfinite(run.results['auc']):
            if run.results['auc'] > run.best_auc:
                run.best_auc = run.results['auc']
                model.save_networks('best', **facts)
                logger.info('new best validation AUC %.4f: saved best_net_*', run.best_auc)
        elif np.isfinite(run.results['val_loss']) and run.results['val_loss'] < run.best_val_loss:
            # one class only: no AUC to rank by, so the validation loss decides (see warn_about_validation)
            run.best_val_loss = run.results['val_loss']
            model.save_networks('best', **facts)
            logger.info('new best validation loss %.4f (%s; the AUC is not measurable): saved best_net_*',
                        run.best_val_loss, VAL_LOSS)


def validate(model, loader, n_samples=4):
    """Validation metrics over the loader's labelled pairs (real: a voice with its own face; fake: with another
    face), and the first ``n_samples`` real pairs for the HTML page as (face, distance to its own voice, mean
    distance of that voice to the other faces it was paired with, NaN where it has none)."""
    model.eval()
    scores, labels, voices, picked = [], [], [], []   # picked: (index among all pairs, face image)
    for batch in util.progress(loader, total=loader.num_batches(), desc='validation', leave=False):
        start = len(voices)
        scores.append(model.score_pairs(batch['voice'], batch['face']).float().cpu().numpy())
        labels.append(batch['label'].numpy())
        voices.extend(batch['voice_path'])
        wanted = np.flatnonzero(labels[-1] == 1)[:n_samples - len(picked)]
        if len(wanted):
            pixels = loader.transport.to_images(batch['face'][wanted.tolist()])   # what the encoder saw
            for i, image in zip(wanted, pixels):
                picked.append((start + i, np.ascontiguousarray(image.permute(1, 2, 0).numpy())))  # (H, W, 3)
    model.train()
    scores, labels = np.concatenate(scores).astype(np.float64), np.concatenate(labels)
    results = metrics.summarize(labels, scores)
    distances = losses.score_distance(model.config.score, scores)   # whatever the score, as a dissimilarity >= 0
    # the spread of a handful of distances says nothing about a collapse: NaN (not judged) below MIN_SPREAD_PAIRS
    results['distance_spread'] = collapse.distance_spread(distances) if len(scores) >= collapse.MIN_SPREAD_PAIRS \
        else float('nan')
    # what best_* follows when the AUC is not measurable: the real pairs' mean distance (lower is better), or, with
    # fakes only, minus theirs (a model that keeps mismatched voices and faces apart)
    results['val_loss'] = float(distances[labels == 1].mean()) if (labels == 1).any() else \
        float(-distances[labels == 0].mean()) if len(labels) else float('nan')
    voices = np.asarray(voices)
    samples = []
    for i, face in picked:
        others = (voices == voices[i]) & (labels == 0)
        samples.append((face, distances[i], float(distances[others].mean()) if others.any() else float('nan')))
    return results, samples


VAL_LOSS = 'the mean voice-face distance of the real validation pairs, or minus that of the fakes when there is no real'


def warn_about_validation(counts):
    """One warning at start-up when the validation set cannot measure an AUC (one class) or only coarsely (fewer than
    10 of a class): what it holds, and what best_* follows then."""
    if counts is None:
        return
    reals, fakes = counts
    if reals == 0 or fakes == 0:
        logger.warning('the validation set holds %d real and %d fake pairs: its AUC is not measurable, so best_* '
                       'follows the validation loss instead (%s). Check --split_file and its val part '
                       '(python -m scripts.make_splits reports the classes of each part)', reals, fakes, VAL_LOSS)
    elif min(reals, fakes) < 10:
        logger.warning('the validation set holds only %d real and %d fake pairs: its AUC, which picks best_*, moves '
                       'in coarse steps', reals, fakes)


def report_losses(run, epoch, epoch_iter, bar, t_comp, t_data):
    """The loss line (log, metrics.jsonl, visdom, progress bar) and the collapse monitor's look at the losses."""
    losses = run.model.get_current_losses()
    n = run.opt.print_freq
    run.visualizer.print_current_losses(epoch, epoch_iter, run.total_iters, losses, t_comp / n, t_data / n,
                                        run.model.optimizers[0].param_groups[0]['lr'])
    bar.set_postfix({k: f'{v:.3g}' for k, v in losses.items()})
    report_collapse(run.monitor.observe_losses(losses, epoch, run.total_iters), run.visualizer, run.opt, losses)


def check_ranks_agree(run, epoch):
    """Under DDP: average the BatchNorm buffers over the ranks and record whether every rank holds the same
    weights (a ``ddp_check`` record)."""
    nets = [net for _, net in run.model.networks()]
    distributed.sync_buffers(run.opt, nets)
    sums = distributed.weight_checksums(run.opt, nets)
    if run.main:
        run.visualizer.log_record({'type': 'ddp_check', 'epoch': epoch, 'world_size': run.opt.world_size,
                                   'identical': all(s == sums[0] for s in sums), 'checksums': sums})


def write_split(opt, dataset):
    """Save the split lists next to the checkpoints (split_train.txt, split_val.txt)."""
    for part, names in dataset.split_lists().items():
        util.atomic_write_text(os.path.join(opt.checkpoints_dir, opt.name, f'split_{part}.txt'),
                               ''.join(name + '\n' for name in names))


def stop_if_nonfinite(run, epoch, where):
    """Stop with a TrainingError when a loss since the start was NaN or infinite (checked on every rank)."""
    opt = run.opt
    if distributed.any_rank(opt, run.model.loss_went_nonfinite()):
        raise TrainingError(f'the training loss became NaN or infinite (noticed {where}, epoch {epoch}, step '
                            f'{run.total_iters}); training stopped without saving, so the last checkpoint in '
                            f'{os.path.join(opt.checkpoints_dir, opt.name)} is the last good one. Try a lower --lr, '
                            f'--amp none (or bf16 instead of fp16), and check the data')


def report_collapse(event, visualizer, opt, losses=None):
    """Log a collapse event: one warning with advice when a collapse starts, a plain line while it lasts."""
    if event is None:
        return
    first = event['type'] == 'collapse' and event['new']
    text = visualizer.report_collapse(event, collapse.advice(opt, losses) if first else '')
    if first:
        logger.warning('%s', text)
    else:
        logger.info('%s', text)


def collapse_stop_message(opt, validations, last_good):
    """The TrainingError text of --stop_on_collapse: what happened and which checkpoint is the last good one."""
    folder = os.path.join(opt.checkpoints_dir, opt.name)
    if last_good is None:
        kept = f'no validation before it was good, so {folder} holds no best_net_*'
    else:
        kept = (f'the last good checkpoint is {last_good[0]}_net_G_*.pth (validation AUC {last_good[1]:.4f}) and '
                f'best_net_G_*.pth holds the best one before the collapse, both in {folder}')
    return (f'training stopped: collapsed on {validations} validation(s) in a row (--stop_on_collapse '
            f'{opt.stop_on_collapse}); {kept}. {collapse.advice(opt)}')


def main(argv=None):
    """Entry point: parse the options, train; 0 on success, 2 with one error line for the user's problems."""
    main_rank = distributed.env_world()[0] == 0
    return util.run_entry(TrainOptions(), train, argv,
                          errors=(DatasetError, util.WriteCheckError, runs.RunFolderError, *MODEL_ERRORS),
                          interrupted='the checkpoints saved before are intact; resume with --continue_train',
                          save=main_rank, verbose=main_rank)


if __name__ == '__main__':
    sys.exit(main())
