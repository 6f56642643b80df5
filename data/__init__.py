"""Datasets, found by name, and the loader that feeds them to a model.

``--dataset_mode Vox_image`` imports ``data/Vox_image_dataset.py`` and takes the ``BaseDataset`` subclass whose name
is the mode without underscores plus ``Dataset``, compared case-insensitively (``VoxImageDataset``). To add a
dataset, add ``data/<mode>_dataset.py`` with such a class; see ``data/base_dataset.py`` for the contract.
"""
import copy
import math
import os

import torch
import torch.utils.data

from util.util import available_components, find_component

from .base_dataset import BaseDataset, DatasetError

__all__ = ['available_datasets', 'find_dataset_using_name', 'get_option_setter', 'create_dataset', 'DatasetLoader',
           'EpochSampler', 'BaseDataset', 'DatasetError']

_HERE = os.path.dirname(os.path.abspath(__file__))


def available_datasets():
    """The names ``--dataset_mode`` accepts, from the files data/<name>_dataset.py."""
    return available_components(_HERE, '_dataset.py')


def find_dataset_using_name(dataset_name):
    """The dataset class for ``--dataset_mode``; ValueError listing the valid names when there is none."""
    return find_component('data', dataset_name, 'dataset', BaseDataset)


def get_option_setter(dataset_name):
    """The ``modify_commandline_options`` of a dataset class."""
    return find_dataset_using_name(dataset_name).modify_commandline_options


def create_dataset(opt, phase=None, shuffle=None, rank=0, world_size=1):
    """Build the dataset of ``opt.dataset_mode`` for ``phase`` (default ``opt.phase``) wrapped in a DatasetLoader.

    ``shuffle`` defaults to training without ``--serial_batches``.
    """
    opt = copy.copy(opt)
    opt.phase = phase or opt.phase
    dataset = find_dataset_using_name(opt.dataset_mode)(opt)
    if shuffle is None:
        shuffle = opt.phase == 'train' and not opt.serial_batches
    return DatasetLoader(dataset, opt, shuffle=shuffle, rank=rank, world_size=world_size)


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
        self.epoch, self.start = int(epoch), int(start)

    def order(self):
        if self.shuffle:
            g = torch.Generator().manual_seed(int(self.seed) * 100003 + self.epoch)
            order = torch.randperm(self.n, generator=g).tolist()
        else:
            order = list(range(self.n))
        per_rank = math.ceil(self.n / self.world_size) if self.n else 0
        order += order[:per_rank * self.world_size - self.n]
        return order[self.rank::self.world_size]

    def __iter__(self):
        """Yields ``(epoch, index)`` keys: the epoch travels with every index, so that persistent loader workers,
        which hold their own copy of the dataset, still draw each sample's randomness for the right epoch."""
        return iter([(self.epoch, i) for i in self.order()[self.start:]])

    def __len__(self):
        return max(0, (math.ceil(self.n / self.world_size) if self.n else 0) - self.start)


class _EpochKeyed(torch.utils.data.Dataset):
    """Dataset view indexed by ``(epoch, index)`` keys: sets the dataset's epoch, then returns ``dataset[index]``."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, key):
        epoch, index = key
        if self.dataset.epoch != epoch:
            self.dataset.set_epoch(epoch)
        return self.dataset[index]


class DatasetLoader:
    """A dataset with its DataLoader: ``for batch in loader`` yields collated dicts of tensors (strings as lists).

    ``set_epoch(epoch, start_batch)`` fixes the sample order and the dataset's random draws for an epoch and skips
    the batches already done (resuming inside an epoch). With ``--num_threads`` > 0 the workers persist across
    epochs and each prefetches ``--prefetch_factor`` batches; batches are pinned when the model runs on CUDA.
    """

    def __init__(self, dataset, opt, *, shuffle, rank=0, world_size=1):
        self.dataset = dataset
        self.opt = opt
        self.batch_size = opt.batch_size
        self.sampler = EpochSampler(len(dataset), shuffle=shuffle, seed=opt.seed, rank=rank, world_size=world_size)
        workers = max(0, int(opt.num_threads))
        extra = {'persistent_workers': True, 'prefetch_factor': getattr(opt, 'prefetch_factor', 2)} if workers else {}
        self.dataloader = torch.utils.data.DataLoader(
            _EpochKeyed(dataset), batch_size=opt.batch_size, sampler=self.sampler, num_workers=workers,
            pin_memory=str(getattr(opt, 'device', 'cpu')).startswith('cuda'), drop_last=False, **extra)

    def set_epoch(self, epoch, start_batch=0):
        self.dataset.set_epoch(epoch)
        self.sampler.set_epoch(epoch, start=start_batch * self.batch_size)

    def __len__(self):
        """Number of samples this process will see in the current epoch."""
        return len(self.sampler)

    def num_batches(self):
        return math.ceil(len(self.sampler) / self.batch_size)

    def __iter__(self):
        return iter(self.dataloader)
