"""Models, found by name, built from options or loaded from checkpoints.

``--model DFD`` imports ``models/DFD_model.py`` and takes the ``BaseModel`` subclass named ``DFDModel`` (the name
without underscores plus ``Model``, compared case-insensitively). See ``models/base_model.py`` for the contract,
``models/config.py`` for the config every checkpoint stores and ``models/checkpoint.py`` for the files.
"""
import os

from util.util import available_components, find_component

from .base_model import BaseModel, TrainingError
from .checkpoint import CheckpointError
from .config import ModelConfig, ModelConfigError

__all__ = ['available_models', 'find_model_using_name', 'get_option_setter', 'create_model', 'load_model',
           'BaseModel', 'CheckpointError', 'TrainingError', 'ModelConfig', 'ModelConfigError', 'MODEL_ERRORS']

_HERE = os.path.dirname(os.path.abspath(__file__))


def available_models():
    """The names ``--model`` accepts, from the files models/<name>_model.py."""
    return available_components(_HERE, '_model.py')


def find_model_using_name(model_name):
    """The model class for ``--model``; ValueError listing the valid names when there is none."""
    return find_component('models', model_name, 'model', BaseModel)


def get_option_setter(model_name):
    """The ``modify_commandline_options`` of a model class."""
    return find_model_using_name(model_name).modify_commandline_options


def create_model(opt, config=None):
    """A new model of ``opt.model`` built from ``config`` (default: the command line's); call ``setup`` next."""
    return find_model_using_name(opt.model).build(opt, config)


def load_model(opt, directory, tag):
    """The model stored as ``<directory>/<tag>_net_*.pth`` (each file read once); call ``setup`` next."""
    return find_model_using_name(opt.model).from_checkpoint(opt, directory, tag)


MODEL_ERRORS = (CheckpointError, TrainingError, ModelConfigError)   # reported by the entry scripts as one line
