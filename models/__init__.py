"""Models, found by name, and reading the checkpoints they write.

``--model DFD`` imports ``models/DFD_model.py`` and takes the ``BaseModel`` subclass named ``DFDModel`` (the name
without underscores plus ``Model``, compared case-insensitively). See ``models/base_model.py`` for the contract.
"""
import os

from util.util import available_components, find_component

from .base_model import BaseModel, CheckpointError, TrainingError, read_checkpoint

__all__ = ['available_models', 'find_model_using_name', 'get_option_setter', 'create_model', 'BaseModel',
           'CheckpointError', 'TrainingError', 'read_checkpoint']

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


def create_model(opt):
    """Instantiate the model named by ``opt.model``; call ``model.setup(opt)`` next."""
    return find_model_using_name(opt.model)(opt)
