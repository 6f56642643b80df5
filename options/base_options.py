"""Options shared by training and testing, in the CycleGAN style.

``BaseOptions.parse()`` builds the parser from three layers: the flags below, the model's flags
(``models/<model>_model.py::modify_commandline_options``) and the dataset's flags
(``data/<dataset_mode>_dataset.py::modify_commandline_options``). It then prints the option table, saves it as
``<checkpoints_dir>/<name>/<phase>_opt.txt`` and ``<phase>_opt.json``, with ``opt.device`` (from ``--gpu_ids``) and,
under torchrun, ``opt.rank``, ``opt.local_rank`` and ``opt.world_size`` already set. Parsing reads no checkpoint: the
model config comes from a checkpoint when the model is loaded (``models.load_model``). ``opt.explicit`` holds the
names of the options given on the command line (a checkpoint's config overrides them with a warning).
"""
import argparse
import json
import logging
import os
import sys

import torch

import data
import models
from data import transport
from util import distributed, runs, util


def parse_gpu_ids(text):
    """'auto' -> [0] when CUDA is available else []; '-1' -> []; '0,1' -> [0, 1]."""
    text = str(text).strip()
    if text == 'auto':
        return [0] if torch.cuda.is_available() else []
    try:
        ids = [int(part) for part in text.split(',') if part.strip() != '']
    except ValueError:
        raise SystemExit(f'error: --gpu_ids must be "auto", "-1" or a comma-separated list of integers, got {text!r}')
    return [i for i in ids if i >= 0]


class BaseOptions:
    """Flags for both phases; subclasses add their own in ``initialize`` and set ``isTrain``."""

    isTrain = False

    def __init__(self):
        self.parser = None

    def initialize(self, parser):
        """Add the flags of both phases: data, experiment, device, model, initialisation, loading and speed."""
        # basic parameters
        parser.add_argument('--dataroot', required=True,
                            help='dataset root: face/ and voice/ for Vox_image; real/, fake/ and audio_feat/ for DFDC')
        parser.add_argument('--name', type=str, default='experiment_name',
                            help='name of the experiment; checkpoints go to <checkpoints_dir>/<name>')
        parser.add_argument('--gpu_ids', type=str, default='auto',
                            help='GPU ids, e.g. 0 or 0,1; -1 for the CPU; auto = the first CUDA GPU if there is one, '
                                 'else the CPU. More than one GPU: launch with torchrun instead (see README)')
        parser.add_argument('--checkpoints_dir', type=str, default='./checkpoints', help='models are saved here')
        parser.add_argument('--seed', type=int, default=20, help='random seed (the released code used 20)')
        parser.add_argument('--deterministic', action='store_true',
                            help='deterministic algorithms only (torch.use_deterministic_algorithms; cuDNN '
                                 'autotuning off): the same seed gives the same losses and scores, a little slower')
        parser.add_argument('--skip_bad', action='store_true',
                            help='leave out samples whose files are missing, unreadable or malformed instead of '
                                 'stopping, and list them in skipped_samples.csv in the experiment folder')
        # model parameters
        parser.add_argument('--model', type=str, default='DFD',
                            help=f'which model to use, from models/<name>_model.py '
                                 f'[{" | ".join(models.available_models())}]')
        parser.add_argument('--init_type', type=str, default='kaiming',
                            choices=('normal', 'xavier', 'kaiming', 'orthogonal'),
                            help='initialisation of convolution and linear weights [normal | xavier | kaiming | '
                                 'orthogonal] (the released code: normal with --init_gain 0.02)')
        parser.add_argument('--init_gain', type=float, default=0.02,
                            help='scale for normal, xavier and orthogonal initialisation')
        parser.add_argument('--token_init_std', type=float, default=0.02,
                            help='standard deviation of the initial class token and position embedding (1 keeps the '
                                 'standard-normal draw of the released code)')
        # dataset parameters
        parser.add_argument('--dataset_mode', type=str, default='Vox_image',
                            help=f'how to read the data, from data/<name>_dataset.py '
                                 f'[{" | ".join(data.available_datasets())}]')
        parser.add_argument('--serial_batches', action='store_true',
                            help='take samples in order instead of shuffling them')
        parser.add_argument('--num_threads', default=4, type=int,
                            help='DataLoader worker processes (0 = load in the main process)')
        parser.add_argument('--batch_size', type=int, default=32,
                            help='anchor clips per training step (the paper: 1), pairs per scoring step at test time')
        parser.add_argument('--load_size', type=int, default=224, help='scale face images to this size')
        parser.add_argument('--crop_size', type=int, default=224,
                            help='then crop to this size (the face encoder input)')
        parser.add_argument('--preprocess', type=str, default='resize_and_crop',
                            help='face scaling and cropping at load time [resize_and_crop | crop | resize | none]')
        parser.add_argument('--no_flip', action='store_true',
                            help='do not flip faces horizontally during training (the paper trains with --no_flip)')
        parser.add_argument('--max_dataset_size', type=int, default=sys.maxsize,
                            help='load at most this many samples (training clips, or test pairs; '
                                 '9223372036854775807 = no limit)')
        parser.add_argument('--epoch', type=str, default='latest',
                            help='which checkpoint to load: latest, best, or an epoch number')
        parser.add_argument('--verbose', action='store_true', help='print the networks and more debugging information')
        parser.add_argument('--allow_mixed_runs', action='store_true',
                            help='load a voice encoder and a face encoder that different training runs wrote (their '
                                 'configs must still agree); without it such a pair is refused')
        # speed
        parser.add_argument('--precision', type=str, default='float32', choices=('float32', 'float64'),
                            help='dtype of the weights and of the computation: float64 is for exact comparisons (two '
                                 'set-ups that should compute the same thing, e.g. one process against several), '
                                 'several times slower; not with --amp')
        parser.add_argument('--amp', type=str, default='none', choices=('none', 'bf16', 'fp16'),
                            help='mixed precision: run the encoders under autocast in bfloat16 or float16 (float16 '
                                 'trains with a gradient scaler); distances and losses stay float32')
        parser.add_argument('--channels_last', type=str, default='on', choices=('on', 'off'),
                            help='channels-last memory format for images and convolutions (faster on GPUs and on '
                                 'oneDNN CPUs alike, see docs/benchmarks.md)')
        parser.add_argument('--compile', action='store_true',
                            help='compile the training step\'s encoders with torch.compile (slow start, faster steps)')
        parser.add_argument('--compile_mode', type=str, default='default',
                            choices=('default', 'reduce-overhead', 'max-autotune', 'max-autotune-no-cudagraphs'),
                            help='torch.compile mode of --compile (docs/benchmarks.md compares them); inductor\'s, '
                                 'so only with --compile_backend inductor')
        parser.add_argument('--compile_backend', type=str, default='inductor',
                            help='torch.compile backend of --compile: inductor generates fused kernels (on a CPU '
                                 'that takes minutes of C++ compilation at the first run); aot_eager traces the same '
                                 'forward and backward graphs and runs them as they are, which tells whether a '
                                 'problem lies in the code generation; any backend torch._dynamo.list_backends() '
                                 'names')
        parser.add_argument('--face_decode', type=str, default='auto', choices=transport.FACE_DECODE,
                            help='where face JPEGs are decoded (data/transport.py): device = in batches on the '
                                 'model\'s device (nvjpeg on CUDA; the loader workers only read the files and draw '
                                 'crops); loader = in the loader workers; auto = device on CUDA when torchvision can, '
                                 'loader otherwise (always loader for the released encoders and the journal\'s '
                                 'inputs)')
        parser.add_argument('--prefetch_factor', type=int, default=2,
                            help='batches each DataLoader worker prepares ahead (with --num_threads > 0)')
        parser.add_argument('--suffix', default='', type=str,
                            help='appended to --name: e.g. {encoder_compat}_d{dim} gives <name>_fixed_d1024')
        return parser

    def gather_options(self, argv=None):
        """Parse the base flags, then add the model's and the dataset's flags and parse again."""
        # -h is added last, so that the help lists the model's and the dataset's flags with the defaults they set;
        # the first passes only look for --model and --dataset_mode, so a required flag may still be missing
        parser = argparse.ArgumentParser(formatter_class=argparse.ArgumentDefaultsHelpFormatter,
                                         description=type(self).__doc__, add_help=False)
        parser = self.initialize(parser)
        required = [action for action in parser._actions if action.required]
        for action in required:
            action.required = False
        opt, _ = parser.parse_known_args(argv)
        try:
            parser = models.get_option_setter(opt.model)(parser, self.isTrain)
            opt, _ = parser.parse_known_args(argv)
            parser = data.get_option_setter(opt.dataset_mode)(parser, self.isTrain)
        except ValueError as err:  # an unknown --model or --dataset_mode: the message lists the valid names
            parser.error(str(err))
        for action in required:
            action.required = True
        parser.add_argument('-h', '--help', action='help', help='show this message (every option, with the default '
                            'of this --model and --dataset_mode) and exit')
        self.parser = parser
        opt = parser.parse_args(argv)
        opt.explicit = explicit_options(parser, argv)
        return opt

    def format_options(self, opt):
        """The option table as printed: one line per option, with its default where it differs."""
        lines = ['----------------- Options ---------------']
        for key, value in sorted(vars(opt).items()):
            if key == 'explicit':
                continue
            default = self.parser.get_default(key)
            comment = f'\t[default: {default}]' if value != default and default is not None else ''
            lines.append(f'{key:>25}: {str(value):<30}{comment}')
        lines.append('----------------- End -------------------')
        return '\n'.join(lines)

    def save_options(self, opt, message):
        """Write the option table as <phase>_opt.txt and <phase>_opt.json in the experiment folder."""
        expr_dir = os.path.join(opt.checkpoints_dir, opt.name)
        if not self.isTrain and not os.path.isdir(expr_dir):   # testing reads an experiment; it does not make one
            return
        try:
            util.check_writable(expr_dir, 'the option table and checkpoints')
        except util.WriteCheckError as err:
            if not self.isTrain:  # testing only reads the checkpoints: a read-only folder is fine
                logging.getLogger(__name__).warning('option table not saved: %s', err)
                return
            raise SystemExit(f'error: {err}') from err
        util.atomic_write_text(os.path.join(expr_dir, f'{opt.phase}_opt.txt'), message + '\n')
        table = {k: v for k, v in sorted(vars(opt).items()) if k != 'explicit'}
        table['explicit'] = sorted(opt.explicit)
        util.atomic_write_text(os.path.join(expr_dir, f'{opt.phase}_opt.json'),
                               json.dumps(table, indent=1, default=str) + '\n')

    def parse(self, argv=None, save=True, verbose=True):
        """Parse ``argv`` (default: sys.argv), finish the options, print and save them."""
        opt = self.gather_options(argv)
        opt.isTrain = self.isTrain
        if opt.suffix:
            try:
                opt.name = opt.name + '_' + opt.suffix.format(**vars(opt))
            except (KeyError, IndexError, ValueError, AttributeError) as err:
                raise SystemExit(f'error: --suffix {opt.suffix!r}: {{...}} must name an option, e.g. '
                                 f'{{encoder_compat}}_d{{dim}} ({type(err).__name__}: {err})') from None
        opt.gpu_ids = parse_gpu_ids(opt.gpu_ids)
        if opt.gpu_ids and not torch.cuda.is_available():
            raise SystemExit(f'error: --gpu_ids {",".join(map(str, opt.gpu_ids))} asks for CUDA, but torch sees no '
                             f'CUDA device; use --gpu_ids -1 for the CPU')
        opt.device = f'cuda:{opt.gpu_ids[0]}' if opt.gpu_ids else 'cpu'
        opt.rank, opt.local_rank, opt.world_size = distributed.env_world()
        if opt.world_size > 1 and opt.gpu_ids:   # torchrun: one GPU per process, by local rank
            opt.device = f'cuda:{opt.local_rank}'
        self.finalize(opt)
        self.validate(opt)
        message = self.format_options(opt)
        if verbose:
            print(message)
        if save:
            self.prepare(opt)
            self.save_options(opt, message)
        return opt

    def finalize(self, opt):
        """Last changes to the parsed options before they are checked and printed (subclasses; no file I/O)."""

    def prepare(self, opt):
        """Get the experiment folder ready before the option table is saved in it (subclasses)."""

    def validate(self, opt):
        """Reject option combinations that cannot work, with a message saying why."""
        try:
            runs.check_name(opt.name)
            runs.check_name(opt.epoch, '--epoch', 'it names the files <checkpoints_dir>/<name>/<epoch>_net_*.pth',
                            'checkpoint tag')
        except ValueError as err:
            raise SystemExit(f'error: {err}') from None
        if opt.precision == 'float64' and opt.amp != 'none':
            raise SystemExit('error: --precision float64 computes in double precision; --amp lowers it: give one')
        if opt.max_dataset_size < 1:
            raise SystemExit(f'error: --max_dataset_size must be at least 1 (samples to load), got '
                             f'{opt.max_dataset_size}')
        if not 0 <= opt.seed < 2 ** 63:
            raise SystemExit(f'error: --seed must lie in [0, 2^63), got {opt.seed}')
        if opt.num_threads > 0 and opt.prefetch_factor < 1:
            raise SystemExit(f'error: --prefetch_factor must be at least 1 (batches each loader worker prepares '
                             f'ahead), got {opt.prefetch_factor}')
        if opt.num_threads < 0:
            raise SystemExit(f'error: --num_threads must be 0 (load in the main process) or more, got '
                             f'{opt.num_threads}')
        if opt.crop_size > opt.load_size and opt.preprocess in ('resize_and_crop',):
            raise SystemExit(f'error: --crop_size {opt.crop_size} is larger than --load_size {opt.load_size}')
        if opt.batch_size < 1:
            raise SystemExit('error: --batch_size must be at least 1')
        if opt.compile_backend != 'inductor' and opt.compile_mode != 'default':
            raise SystemExit(f'error: --compile_mode {opt.compile_mode} is a mode of the inductor backend; '
                             f'--compile_backend {opt.compile_backend} takes none')
        if opt.compile:
            import torch._dynamo
            backends = torch._dynamo.list_backends(exclude_tags=())
            if opt.compile_backend not in backends:
                raise SystemExit(f'error: --compile_backend {opt.compile_backend!r} is not a torch.compile backend '
                                 f'here; choose from {", ".join(sorted(backends))}')
        if len(opt.gpu_ids) > 1:
            raise SystemExit('error: one process drives one GPU; for several GPUs launch one process per GPU with '
                             'torchrun (see the README, "Several GPUs")')


def record_model(opt, config, source):
    """Make the run's option record (``<phase>_opt.txt`` and ``.json``, written when the options were parsed) tell
    the sizes the model has: the options ``config`` fixes are shown with their model values and marked with where
    they came from (``source``: 'the checkpoint' for a loaded or fine-tuned model, 'the model config' for a new one,
    marked only where an encoder's own default overrode the option), the shared sizes the two encoders hold
    differently as 'per encoder', and the JSON gains ``model_config`` and ``model_sources``. A record that was not
    written (a test of a folder it cannot write) stays unwritten."""
    expr_dir = os.path.join(opt.checkpoints_dir, opt.name)
    text_path, json_path = (os.path.join(expr_dir, f'{opt.phase}_opt.{ext}') for ext in ('txt', 'json'))
    try:
        with open(json_path) as handle:
            table = json.load(handle)
        with open(text_path) as handle:
            lines = handle.read().splitlines()
    except (OSError, ValueError):
        return
    values, per_encoder = config.option_values()
    notes = {}
    for key, value in values.items():
        if source == 'the checkpoint' or (key not in opt.explicit and table.get(key) != value):
            notes[key] = (value, f'[model: from {source}]')
    for key, both in per_encoder.items():
        notes[key] = (f'voice {both["voice"]}, face {both["face"]}', '[model: per encoder]')
    for i, line in enumerate(lines):
        key = line.split(':', 1)[0].strip()
        if key in notes and ':' in line:
            value, note = notes[key]
            lines[i] = f'{key:>25}: {str(value):<30}\t{note}'
    table.update({key: values[key] for key in notes if key in values})
    table.update({key: dict(both) for key, both in per_encoder.items()})
    table['model_config'] = config.to_dict()
    table['model_sources'] = {key: note.strip('[]') for key, (_, note) in sorted(notes.items())}
    try:
        util.atomic_write_text(text_path, '\n'.join(lines) + '\n')
        util.atomic_write_text(json_path, json.dumps(table, indent=1, default=str) + '\n')
    except OSError as err:
        logging.getLogger(__name__).warning('option record not updated with the model\'s sizes: %s', err)


def explicit_options(parser, argv=None):
    """Names (dests) of the options that appear on the command line ``argv``."""
    probe = argparse.ArgumentParser(add_help=False)
    for action in parser._actions:
        if action.option_strings and action.dest != 'help':
            kwargs = dict(dest=action.dest, default=argparse.SUPPRESS)
            if action.nargs == 0:
                probe.add_argument(*action.option_strings, action='store_const', const=True, **kwargs)
            else:
                probe.add_argument(*action.option_strings, nargs=action.nargs, **kwargs)
    seen, _ = probe.parse_known_args(argv)
    return set(vars(seen))
