"""Train VFD: pull a clip's voice embedding towards its own face and away from other identities' faces.

    python train_DF.py --dataroot ./Dataset/Voxceleb2 --dataset_mode Vox_image --model DFD --no_flip --name NAME
    torchrun --nproc_per_node 4 train_DF.py ...          # one process per GPU (DistributedDataParallel)

Every ``--save_epoch_freq`` epochs it measures the validation AUC on the held-out identities and writes
``<epoch>_net_G_audio.pth``, ``<epoch>_net_G_video.pth``, ``latest_*`` and ``best_*`` (highest validation AUC) to
``<checkpoints_dir>/<name>/``, with the options, the identity split and the logs. ``--continue_train`` resumes.
Under torchrun only rank 0 logs, validates and writes. See ``python train_DF.py --help`` for every option.
"""
import itertools
import logging
import os
import sys
import time

import numpy as np
from tqdm import tqdm

from data import DatasetError, DatasetLoader, create_dataset
from models import CheckpointError, TrainingError, create_model
from options.train_options import TrainOptions
from util import collapse, distributed, metrics, util
from util.visualizer import Visualizer

logger = logging.getLogger('train_DF')


def validate(model, loader, n_samples=4):
    """Validation metrics (real pairs against mismatched pairs: each anchor's voice with other identities' faces),
    and ``n_samples`` faces of the first batch with their distance to their own voice and to the other voices."""
    model.eval()
    real, fake, samples = [], [], []
    for batch in util.progress(loader, total=loader.num_batches(), desc='validation', leave=False):
        if 'label' in batch:   # deepfake data (fine-tuning): real and fake pairs as they come
            scores = model.score_pairs(batch['voice'], batch['face']).float().cpu().numpy()
            labels = batch['label'].numpy()
            real.append(scores[labels == 1])
            fake.append(scores[labels == 0])
            own, others = -scores, np.full(len(scores), np.nan)
        else:
            r, f = model.score_triplets(batch)
            real.append(r.float().cpu().numpy())
            fake.append(f.float().cpu().numpy().reshape(len(r), -1))
            own, others = -real[-1], -fake[-1].mean(1)
        if not samples:
            faces = ((batch['face'][:n_samples].permute(0, 2, 3, 1).numpy() + 1) * 127.5).clip(0, 255)
            samples = [(face.astype(np.uint8), own[i], others[i]) for i, face in enumerate(faces)]
    model.train()
    real, fake = np.concatenate(real), np.concatenate(fake).ravel()
    labels = np.concatenate([np.ones_like(real), np.zeros_like(fake)])
    results = metrics.summarize(labels, np.concatenate([real, fake]))
    results['distance_spread'] = collapse.distance_spread(-np.concatenate([real, fake]))
    return results, samples


def write_split(opt, loader):
    """Save the identity split next to the checkpoints (split_train.txt, split_val.txt)."""
    for part, identities in loader.dataset.split_lists().items():
        util.atomic_write_text(os.path.join(opt.checkpoints_dir, opt.name, f'split_{part}.txt'),
                               ''.join(i + '\n' for i in identities))


def checkpoint_bytes(model):
    """About the disk space one round of saving takes: weights as <epoch>, latest and best files, and the training
    state (weights again and Adam's two moments)."""
    weights = sum(t.numel() * t.element_size() for _, net in model.networks() for t in net.state_dict().values())
    return weights * 7


def stop_if_nonfinite(model, opt, epoch, total_iters, where):
    """Stop with a TrainingError when a loss since the start was NaN or infinite (checked on every rank)."""
    if distributed.any_rank(opt, model.loss_went_nonfinite()):
        raise TrainingError(f'the training loss became NaN or infinite (noticed {where}, epoch {epoch}, step '
                            f'{total_iters}); training stopped without saving, so the last checkpoint in '
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


def train(opt):
    distributed.setup(opt)
    main = distributed.is_main(opt)
    if not main:
        logging.getLogger().setLevel(logging.WARNING)
    logger.info('commit %s', util.git_commit())
    util.seed_everything(opt.seed + opt.rank)
    util.set_deterministic(opt.deterministic)
    expr_dir = os.path.join(opt.checkpoints_dir, opt.name)
    opt.skip_log = os.path.join(expr_dir, 'skipped_samples.csv' if main else f'skipped_samples.rank{opt.rank}.csv')
    train_loader = create_dataset(opt, phase='train', rank=opt.rank, world_size=opt.world_size)
    val_loader = None
    if main:
        write_split(opt, train_loader)
        if train_loader.dataset.has_validation():
            val_loader = create_dataset(opt, phase='val', shuffle=False)
        else:
            logger.warning('no validation data (--val_ratio 0, or no val part in --split_file): no validation AUC, '
                           'no best checkpoint, no threshold stored with the checkpoints')
    logger.info('%d training clips (%d per process), %d validation clips', len(train_loader.dataset),
                len(train_loader), len(val_loader) if val_loader else 0)

    model = create_model(opt)
    model.setup(opt)
    if opt.pretrained_name and not opt.continue_train:   # fine-tuning starts from a trained model's weights
        model.load_networks(opt.pretrained_epoch, directory=os.path.join(opt.checkpoints_dir, opt.pretrained_name))
    if main:  # before hours of work: can the checkpoints be written, and is there room for them?
        util.check_writable(expr_dir, 'the checkpoints', need_bytes=checkpoint_bytes(model))
    epoch, start_batch, total_iters, best_auc = opt.epoch_count, 0, 0, -1.0
    if opt.continue_train:
        counters = model.load_training_state(opt.epoch)
        epoch, start_batch = counters['epoch'], counters['epoch_iter']
        total_iters, best_auc = counters['total_iters'], counters.get('best_auc', -1.0)
        logger.info('resuming at epoch %d, step %d of the epoch (%d steps done)', epoch, start_batch, total_iters)
    visualizer = Visualizer(opt, enabled=main)
    monitor = collapse.CollapseMonitor() if main else None
    last_good = None   # (epoch, AUC) of the last validation that did not find a collapse
    # a fixed shuffled view of the training set for recomputing BatchNorm statistics (rank 0)
    recalib_loader = (DatasetLoader(train_loader.dataset, opt, shuffle=True, skip_log=train_loader.skip_log)
                      if main else None)
    last_epoch = opt.n_epochs + opt.n_epochs_decay
    results = None

    for epoch in range(epoch, last_epoch + 1):
        train_loader.set_epoch(epoch, start_batch)
        epoch_iter, epoch_start = start_batch, time.time()
        start_batch = 0
        model.train()
        t_data_sum = t_comp_sum = 0.0
        t_mark = time.time()
        bar = util.progress(total=train_loader.num_batches() + epoch_iter, initial=epoch_iter,
                            desc=f'epoch {epoch}/{last_epoch}', disable=not main)
        for batch in train_loader:
            t_loaded = time.time()
            model.apply_warmup(total_iters + 1)
            model.set_input(batch)
            model.optimize_parameters()
            epoch_iter += 1
            total_iters += 1
            t_now = time.time()
            t_data_sum, t_comp_sum, t_mark = t_data_sum + (t_loaded - t_mark), t_comp_sum + (t_now - t_loaded), t_now
            bar.update()
            if total_iters % opt.print_freq == 0:
                stop_if_nonfinite(model, opt, epoch, total_iters, 'at a print step')
            if total_iters % opt.print_freq == 0 and main:
                losses = model.get_current_losses()
                n = opt.print_freq
                visualizer.print_current_losses(epoch, epoch_iter, total_iters, losses, t_comp_sum / n, t_data_sum / n,
                                                model.optimizers[0].param_groups[0]['lr'],
                                                counter_ratio=epoch_iter / max(1, bar.total))
                bar.set_postfix({k: f'{v:.3g}' for k, v in losses.items()})
                report_collapse(monitor.observe_losses(losses, epoch, total_iters), visualizer, opt, losses)
            if total_iters % opt.print_freq == 0:
                t_data_sum = t_comp_sum = 0.0
            if opt.save_latest_freq and total_iters % opt.save_latest_freq == 0:
                stop_if_nonfinite(model, opt, epoch, total_iters, 'before saving')
            if opt.save_latest_freq and total_iters % opt.save_latest_freq == 0 and main:
                tqdm.write(f'saving the latest model (epoch {epoch}, total_iters {total_iters})')
                model.save_networks('latest', epoch=epoch, total_iters=total_iters)
                model.save_training_state('latest', epoch=epoch, epoch_iter=epoch_iter, total_iters=total_iters,
                                          best_auc=best_auc)
        bar.close()

        checkpoint_epoch = epoch % opt.save_epoch_freq == 0 or epoch == last_epoch
        stop_if_nonfinite(model, opt, epoch, total_iters, 'at the end of the epoch')
        if checkpoint_epoch and opt.world_size > 1:  # every rank takes part in the check
            nets = [net for _, net in model.networks()]
            distributed.sync_buffers(opt, nets)
            sums = distributed.weight_checksums(opt, nets)
            if main:
                visualizer.log_record({'type': 'ddp_check', 'epoch': epoch, 'world_size': opt.world_size,
                                       'identical': all(s == sums[0] for s in sums), 'checksums': sums})
        if checkpoint_epoch and main:
            if opt.bn_recalib_batches > 0:
                recalib_loader.set_epoch(0)
                used = model.recalibrate_batch_norm(itertools.islice(recalib_loader, opt.bn_recalib_batches))
                logger.info('BatchNorm statistics recomputed over %d training batches', used)
            extra = {'epoch': epoch, 'total_iters': total_iters}
            collapsed = False
            if val_loader is not None:
                results, samples = validate(model, val_loader)
                visualizer.print_validation(epoch, total_iters, results, samples)
                extra['val'] = results
                event = monitor.observe_validation(results['auc'], results['distance_spread'], epoch, total_iters)
                report_collapse(event, visualizer, opt)
                collapsed = monitor.collapsed_validations > 0
            logger.info('saving the model at the end of epoch %d, iters %d', epoch, total_iters)
            model.save_networks(epoch, **extra)
            model.save_networks('latest', **extra)
            if results is not None and not collapsed:
                last_good = (epoch, results['auc'])
                if results['auc'] > best_auc:
                    best_auc = results['auc']
                    model.save_networks('best', **extra)
                    logger.info('new best validation AUC %.4f: saved best_net_*', best_auc)
        stop = (main and opt.stop_on_collapse > 0 and checkpoint_epoch
                and monitor.collapsed_validations >= opt.stop_on_collapse)
        if checkpoint_epoch and distributed.broadcast(opt, stop):
            raise TrainingError(collapse_stop_message(opt, monitor.collapsed_validations if main else 0, last_good))
        auc = distributed.broadcast(opt, results['auc'] if results else None) if checkpoint_epoch else None
        model.update_learning_rate(auc)
        if checkpoint_epoch and main:
            model.save_training_state('latest', epoch=epoch + 1, epoch_iter=0, total_iters=total_iters,
                                      best_auc=best_auc)
        logger.info('end of epoch %d / %d \t time taken: %.0f s', epoch, last_epoch, time.time() - epoch_start)
    distributed.barrier(opt)
    distributed.cleanup(opt)
    return results


def main(argv=None):
    main_rank = distributed.env_world()[0] == 0
    return util.run_entry(TrainOptions(), train, argv,
                          errors=(DatasetError, CheckpointError, TrainingError, util.WriteCheckError),
                          save=main_rank, verbose=main_rank)


if __name__ == '__main__':
    sys.exit(main())
