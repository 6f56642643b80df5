"""Datasets, found by name, and the loader that feeds them to a model.

``--dataset_mode Vox_image`` imports ``data/Vox_image_dataset.py`` and takes the ``BaseDataset`` subclass whose name
is the mode without underscores plus ``Dataset``, compared case-insensitively (``VoxImageDataset``). To add a
dataset, add ``data/<mode>_dataset.py`` with such a class; see ``data/base_dataset.py`` for the contract.
"""
import csv
import logging
import math
import os

import torch
import torch.utils.data

from util.util import available_components, find_component, ignore_sigterm_in_worker

from .base_dataset import BaseDataset, DatasetError
from .faces import FaceBatch

__all__ = ['available_datasets', 'find_dataset_using_name', 'get_option_setter', 'create_dataset', 'DatasetLoader',
           'SkipLog', 'EpochSampler', 'BaseDataset', 'DatasetError']

_HERE = os.path.dirname(os.path.abspath(__file__))
logger = logging.getLogger(__name__)


def available_datasets():
    """The names ``--dataset_mode`` accepts, from the files data/<name>_dataset.py."""
    return available_components(_HERE, '_dataset.py')


def find_dataset_using_name(dataset_name):
    """The dataset class for ``--dataset_mode``; ValueError listing the valid names when there is none."""
    return find_component('data', dataset_name, 'dataset', BaseDataset)


def get_option_setter(dataset_name):
    """The ``modify_commandline_options`` of a dataset class."""
    return find_dataset_using_name(dataset_name).modify_commandline_options


def create_dataset(opt, phase, *, shuffle=None, rank=0, world_size=1, skip_log=None, transport=None,
                   **dataset_args):
    """The dataset of ``opt.dataset_mode`` for ``phase`` (train, val, test) wrapped in a DatasetLoader.

    ``transport`` and ``dataset_args``: what a model needs (``data.transport.dataset_args(config, opt, phase)``:
    negatives per item, fake voices or not, and the Transport). With a Transport the loader yields encoder input on
    the model's device (``Transport.to_encoder``); without one, the batches as the workers collated them (uint8
    faces). ``shuffle`` defaults to training without ``--serial_batches``; ``skip_log``: a SkipLog (``--skip_bad``),
    shared by a run's loaders.
    """
    if transport is not None:
        dataset_args = {**transport.dataset_kwargs(), **dataset_args}
    dataset = find_dataset_using_name(opt.dataset_mode)(opt, phase, **dataset_args)
    if shuffle is None:
        shuffle = phase == 'train' and not opt.serial_batches
    return DatasetLoader(dataset, opt, shuffle=shuffle, rank=rank, world_size=world_size, skip_log=skip_log,
                         transport=transport)


class EpochSampler(torch.utils.data.Sampler):
    """Sample order for one epoch: a permutation drawn from ``(seed, epoch)`` (or 0..n-1 without shuffling).

    With ``world_size`` > 1 each rank takes every world_size-th index of the order, padded by wrapping around so
    that all ranks see the same number of samples. ``start`` skips the first samples of this rank's share (to
    resume inside an epoch).
    """

    def __init__(self, n, *, shuffle, seed, rank=0, world_size=1):
        self.n, self.shuffle, self.seed = n, shuffle, seed
        self.rank, self.world_size = rank, world_size
        self.epoch, self.start = 0, 0

    def set_epoch(self, epoch, start=0):
        """Use the order of ``epoch``, skipping its first ``start`` samples of this rank."""
        self.epoch, self.start = int(epoch), int(start)

    def order(self):
        """This rank's sample indices for the current epoch (before ``start``)."""
        if self.shuffle:
            g = torch.Generator().manual_seed(int(self.seed) * 100003 + self.epoch)
            order = torch.randperm(self.n, generator=g).tolist()
        else:
            order = list(range(self.n))
        per_rank = math.ceil(self.n / self.world_size) if self.n else 0
        order += order[:per_rank * self.world_size - self.n]
        return order[self.rank::self.world_size]

    def __iter__(self):
        """Yields ``(epoch, index)`` keys: the epoch travels with every index into the sample's random generator, so
        persistent loader workers, which hold their own copy of the dataset, draw for the right epoch."""
        return iter([(self.epoch, i) for i in self.order()[self.start:]])

    def __len__(self):
        """Samples this rank yields in the current epoch."""
        return max(0, (math.ceil(self.n / self.world_size) if self.n else 0) - self.start)


class _Guarded(torch.utils.data.Dataset):
    """Dataset view that turns a DatasetError into a ``_BadSample``, so that a loader worker reports a bad file to
    the main process (``DatasetLoader.__iter__``) instead of crashing."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, key):
        try:
            return self.dataset[key]
        except DatasetError as err:
            return _BadSample(key[1] if isinstance(key, tuple) else key, str(err), err.path)


class _BadSample:
    """Stands in for a sample whose files could not be used; carries the message and the file."""

    def __init__(self, index, message, path):
        self.index, self.message, self.path = index, message, path


def _collate(items):
    """Default collation, except that bad samples are set aside (``{'__bad__': [...], 'batch': good or None}``)
    and the ``replaced`` records of the items are joined into one list (not collated)."""
    bad = [item for item in items if isinstance(item, _BadSample)]
    good = [item for item in items if not isinstance(item, _BadSample)]
    replaced = [record for item in good for record in item.pop('replaced', ())]
    encoded = {}   # faces left for the model's device to decode (--face_decode device)
    for key in ('face', 'neg_faces'):
        batch = FaceBatch.collate([item[key] for item in good]) if good and key in good[0] else None
        if batch is not None:
            encoded[key] = batch
            for item in good:
                del item[key]
    batch = torch.utils.data.default_collate(good) if good else None
    if batch is not None:
        batch.update(encoded)
        if replaced:
            batch['replaced'] = replaced
    if not bad:
        return batch
    return {'__bad__': bad, 'batch': batch}


class SkipLog:
    """The list of skipped samples of a run (``--skip_bad``): a CSV file with phase, file and reason per line."""

    HEADER = ['phase', 'path', 'reason']

    def __init__(self, path):
        self.path = path
        self.seen = set()   # (phase, path) already listed, by this run's other loaders or an earlier run
        self.count = 0      # lines this object added
        if os.path.isfile(path):
            with open(path, newline='') as handle:
                self.seen = {(row.get('phase'), row.get('path')) for row in csv.DictReader(handle)}

    def add(self, phase, path, reason):
        """Append one line (once per phase and file)."""
        if (phase, path) in self.seen:
            return
        self.seen.add((phase, path))
        self.count += 1
        new = not os.path.isfile(self.path)
        os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        with open(self.path, 'a', newline='') as handle:
            writer = csv.writer(handle)
            if new:
                writer.writerow(self.HEADER)
            writer.writerow([phase, path, reason])


class DatasetLoader:
    """A dataset with its DataLoader: ``for batch in loader`` yields collated dicts of tensors (strings as lists),
    voices and faces as encoder input on the model's device when the loader has a Transport.

    ``set_epoch(epoch, start_batch)`` fixes the sample order and the samples' random draws for an epoch and skips
    the batches already done (resuming inside an epoch). With ``--num_threads`` > 0 the workers persist across
    epochs and each prefetches ``--prefetch_factor`` batches; batches are pinned when the model runs on CUDA.
    """

    def __init__(self, dataset, opt, *, shuffle, rank=0, world_size=1, skip_log=None, transport=None):
        """``skip_log``: the SkipLog of the run (``--skip_bad``), or None; ``transport``: the Transport that turns
        each batch into encoder input (``data/transport.py``), or None for the batches as collated."""
        self.dataset = dataset
        self.transport = transport
        self.batch_size = opt.batch_size
        self.sampler = EpochSampler(len(dataset), shuffle=shuffle, seed=opt.seed, rank=rank, world_size=world_size)
        workers = max(0, int(opt.num_threads))
        extra = {'persistent_workers': True, 'prefetch_factor': opt.prefetch_factor,
                 'worker_init_fn': ignore_sigterm_in_worker} if workers else {}
        self.dataloader = torch.utils.data.DataLoader(
            _Guarded(dataset), batch_size=opt.batch_size, sampler=self.sampler, num_workers=workers,
            collate_fn=_collate, pin_memory=opt.device.startswith('cuda'), drop_last=False, **extra)
        self.skip_bad = opt.skip_bad
        self.attach_skip_log(skip_log)

    def attach_skip_log(self, skip_log):
        """Keep the skipped samples in ``skip_log`` (or None) from now on, starting with those found while scanning
        (``--skip_bad``)."""
        self.skip_log = skip_log
        for path, reason in self.dataset.skipped:
            self._record(path, reason)

    def _record(self, path, reason):
        if self.skip_log is not None:
            self.skip_log.add(self.dataset.phase, path, reason)

    def set_epoch(self, epoch, start_batch=0):
        """Sample order and random draws of ``epoch``; skip its first ``start_batch`` batches."""
        self.sampler.set_epoch(epoch, start=start_batch * self.batch_size)

    def __len__(self):
        """Number of samples this process will see in the current epoch."""
        return len(self.sampler)

    def num_batches(self):
        """Number of batches this process will see in the current epoch."""
        return math.ceil(len(self.sampler) / self.batch_size)

    def __iter__(self):
        """Collated batches; a sample whose files cannot be used stops the run with a DatasetError that names the
        file, raised here in the main process, or with ``--skip_bad`` is left out of its batch and listed in the
        skip log. Negatives replaced with ``--skip_bad`` are listed too. An error that ends the iteration also ends
        the loader workers (they ignore SIGTERM, so nothing else would: a process exiting with the error still in
        hand would wait for them for ever)."""
        try:
            yield from self._batches()
        except GeneratorExit:   # the caller stopped early (a break): persistent workers stay for the next epoch
            raise
        except BaseException:
            self.shutdown()
            raise

    def shutdown(self):
        """End the loader workers now (the next iteration starts new ones)."""
        iterator = getattr(self.dataloader, '_iterator', None)
        if iterator is not None and hasattr(iterator, '_shutdown_workers'):
            iterator._shutdown_workers()
        self.dataloader._iterator = None

    def _batches(self):
        for batch in self.dataloader:
            if isinstance(batch, dict) and '__bad__' in batch:
                for bad in batch['__bad__']:
                    if not self.skip_bad:
                        raise DatasetError(f'{bad.message}\n(sample {bad.index} of the {self.dataset.phase} set; '
                                           f'--skip_bad leaves such samples out and lists them)', path=bad.path)
                    logger.warning('skipped sample %d: %s', bad.index, bad.message)
                    self._record(bad.path or f'sample {bad.index}', bad.message)
                batch = batch['batch']
                if batch is None:
                    continue
            for record in batch.pop('replaced', ()):
                logger.warning('replaced an unreadable negative: %s', record['reason'])
                self._record(record['path'], record['reason'])
            yield batch if self.transport is None else self.transport.batch_to_encoder(batch)
