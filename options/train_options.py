"""Training flags (train_DF.py): logging and saving frequencies, epochs, optimiser and learning-rate policy."""
import logging
import math
import os

from models.networks import LR_POLICIES
from util import runs

from .base_options import BaseOptions


# The released code's training, option by option: --recipe released sets each of these that the command line does
# not name (the defaults of this project differ where docs/training.md measured a reason; the README lists them).
RELEASED_RECIPE = {
    'init_type': 'normal', 'init_gain': 0.02, 'token_init_std': 1.0,
    'negatives': 'sampled', 'n_negatives': 5, 'batch_size': 1,
    'loss': 'triplet', 'margin': 100.0, 'margin_mode': 'absolute',
    'lr': 0.0002, 'beta1': 0.5, 'lr_fan_in': 0, 'warmup_steps': 0,
    'lr_policy': 'linear', 'n_epochs': 2, 'n_epochs_decay': 20,
    'bn_recalib_batches': 0,
}
# The journal version's pre-training on VoxCeleb2 (its pretrain_general.py and configs/voxceleb2_voice_face): the
# CLIP-style encoders and their inputs, InfoNCE with 3 paired negatives at temperature 0.1, AdamW, a cosine schedule
# after 2 warm-up epochs, 20 epochs of batch 64, the journal's face augmentation, the cosine score. Its config gives
# lr 5e-6 times an f_ratio of 10 for both encoders: 5e-5.
JOURNAL_RECIPE = {
    'encoder_compat': 'journal', 'inputs': 'journal', 'score': 'cosine',
    'loss': 'infonce_paired', 'temperature': 0.1, 'negatives': 'sampled', 'n_negatives': 3, 'batch_size': 64,
    'optimizer': 'adamw', 'lr': 5e-5, 'beta1': 0.9, 'beta2': 0.98, 'eps': 1e-8, 'weight_decay': 0.2,
    'lr_policy': 'cosine_warmup', 'warmup_epochs': 2, 'n_epochs': 20, 'n_epochs_decay': 0,
    'lr_fan_in': 0, 'warmup_steps': 0, 'augment': 'journal', 'bn_recalib_batches': 0,
}
# The journal's fine-tuning on a deepfake set (finetune_deepfake.py, configs/DFDC and configs/FakeAVCeleb): the real
# pair against 10 fake pairs at temperature 0.1, lr 5e-6 (DFDC: 5e-6 x 1; FakeAVCeleb: 5e-7 x 10), 20 epochs, batch 8
# (DFDC; FakeAVCeleb used 16), the rest as in pre-training. Start it from a pre-trained run (--pretrained_name).
JOURNAL_FINETUNE_RECIPE = {
    **{k: v for k, v in JOURNAL_RECIPE.items() if k not in ('encoder_compat', 'inputs', 'score')},  # the checkpoint's
    'loss': 'fake_pairs', 'n_negatives': 10, 'batch_size': 8, 'lr': 5e-6,
}
RECIPES = ('default', 'released', 'journal', 'journal_finetune')
RECIPE_VALUES = {'released': RELEASED_RECIPE, 'journal': JOURNAL_RECIPE, 'journal_finetune': JOURNAL_FINETUNE_RECIPE}


class TrainOptions(BaseOptions):
    """Train VFD: a voice encoder and a face encoder pulled together for matching clips (train_DF.py)."""

    isTrain = True

    def initialize(self, parser):
        """Add --recipe and the display, logging, saving, resuming, fine-tuning and schedule flags to the base flags."""
        parser = BaseOptions.initialize(self, parser)
        parser.add_argument('--recipe', type=str, default='default', choices=RECIPES,
                            help='released: the 2022 release\'s training (N(0, 0.02) weights, standard-normal class '
                                 'token and position embedding, 5 sampled negatives, one anchor per step, margin 100, '
                                 'Adam 2e-4 / 0.5, 2 + 20 epochs, no BatchNorm recalibration); journal: the journal '
                                 'version\'s pre-training (its ViT-B/32 encoders and inputs, InfoNCE with 3 paired '
                                 'negatives at temperature 0.1, AdamW 5e-5 (0.9, 0.98) with weight decay 0.2, cosine '
                                 'schedule after 2 warm-up epochs, 20 epochs of batch 64, its face augmentation, the '
                                 'cosine score); journal_finetune: its fine-tuning on a deepfake set (fake_pairs, 10 '
                                 'fake pairs, lr 5e-6, batch 8; with --pretrained_name and --dataset_mode DFDC); '
                                 'options typed on the command line still win. default: this project\'s defaults '
                                 '(see the README)')
        # visdom and the HTML page
        parser.add_argument('--display_id', type=int, default=1,
                            help='> 0: plot losses and validation AUC on a visdom server; 0: no visdom')
        parser.add_argument('--display_server', type=str, default='http://localhost',
                            help='visdom server address (start one with bash scripts/visdom_server.sh)')
        parser.add_argument('--display_port', type=int, default=8097, help='visdom server port')
        parser.add_argument('--display_env', type=str, default='main',
                            help='visdom environment that receives the plots')
        parser.add_argument('--display_winsize', type=int, default=128,
                            help='width in pixels of the validation faces on the HTML page')
        parser.add_argument('--no_html', action='store_true',
                            help='do not write the HTML page <checkpoints_dir>/<name>/web/index.html')
        # logging and saving
        parser.add_argument('--print_freq', type=int, default=100,
                            help='write a loss line every this many training steps')
        parser.add_argument('--save_latest_freq', type=int, default=5000,
                            help='save the latest checkpoint every this many training steps (0 = only at epoch ends)')
        parser.add_argument('--save_epoch_freq', type=int, default=1,
                            help='validate and save <epoch>_net_*.pth every this many epochs')
        parser.add_argument('--overwrite', action='store_true',
                            help='start over in a folder that holds a run: its checkpoints, logs and page are moved '
                                 'into <checkpoints_dir>/<name>/replaced-<time>/ first (without it, or '
                                 '--continue_train, training refuses such a folder)')
        parser.add_argument('--break_lock', action='store_true',
                            help='take over a folder whose train.lock another machine (or a gone process) holds, '
                                 'e.g. after a job was requeued on another node; the owner is named in the log')
        parser.add_argument('--continue_train', action='store_true',
                            help='resume from the checkpoint named by --epoch (weights, optimiser, schedule, epoch)')
        parser.add_argument('--epoch_count', type=int, default=1,
                            help='number of the first epoch; --continue_train sets it from the checkpoint')
        parser.add_argument('--phase', type=str, default='train', help='train, val, test, etc.')
        parser.add_argument('--pretrained_name', type=str, default='',
                            help='fine-tuning: start from the weights of <checkpoints_dir>/<pretrained_name> (its '
                                 'architecture options are taken over); empty = train from scratch')
        parser.add_argument('--pretrained_epoch', type=str, default='best',
                            help='which checkpoint of --pretrained_name: best, latest or an epoch number')
        parser.add_argument('--bn_recalib_batches', type=int, default=25,
                            help='before each validation and epoch checkpoint, recompute the BatchNorm running '
                                 'statistics exactly over this many training batches (0 = keep the moving averages '
                                 'of the released code)')
        parser.add_argument('--stop_on_collapse', type=int, default=0,
                            help='stop (exit status 2) when this many validations in a row find the training '
                                 'collapsed (embeddings that no longer depend on the input; see docs/training.md); '
                                 'best_net_* and the epoch checkpoints from before stay. 0 = warn only')
        # training schedule
        parser.add_argument('--n_epochs', type=int, default=2, help='epochs at the initial learning rate')
        parser.add_argument('--n_epochs_decay', type=int, default=20,
                            help='epochs over which the learning rate decays linearly to zero')
        parser.add_argument('--optimizer', type=str, default='adam', choices=('adam', 'adamw'),
                            help='adam, or adamw (decoupled weight decay, the journal\'s)')
        parser.add_argument('--beta1', type=float, default=0.9, help='Adam beta1')
        parser.add_argument('--beta2', type=float, default=0.999, help='Adam beta2 (the journal: 0.98)')
        parser.add_argument('--eps', type=float, default=1e-8, help='Adam epsilon')
        parser.add_argument('--weight_decay', type=float, default=0.0,
                            help='weight decay (adamw: decoupled, the journal: 0.2; adam: added to the gradient)')
        parser.add_argument('--lr', type=float, default=0.0005, help='initial learning rate')
        parser.add_argument('--warmup_steps', type=int, default=0,
                            help='raise the learning rate linearly from 0 over this many first steps')
        parser.add_argument('--lr_fan_in', type=int, default=512,
                            help='a weight matrix with a fan-in above this learns at lr x this / fan-in, so that '
                                 'one Adam step changes every layer\'s output alike at any model size (see '
                                 'docs/training.md); 0 = one learning rate for all, as the released code')
        parser.add_argument('--lr_policy', type=str, default='linear', choices=LR_POLICIES,
                            help='learning-rate policy [linear | step | plateau | cosine | cosine_warmup]; '
                                 'cosine_warmup (the journal\'s) rises linearly from 0 over --warmup_epochs, then '
                                 'follows a half cosine to 0 at the end of the last epoch, updated every step')
        parser.add_argument('--warmup_epochs', type=float, default=2.0,
                            help='--lr_policy cosine_warmup: epochs of the linear warm-up')
        parser.add_argument('--augment', type=str, default='none', choices=('none', 'journal'),
                            help='training-face augmentation: none (the random crop and flip of --preprocess and '
                                 '--no_flip); journal: the journal\'s RandAugment (2, 9), multi-scale crop, flip, '
                                 'colour jitter (p 0.8) and grayscale (p 0.2), with torchvision.transforms.v2')
        parser.add_argument('--lr_decay_iters', type=int, default=50,
                            help='step policy: multiply the learning rate by 0.1 every this many epochs')
        return parser

    def finalize(self, opt):
        """Apply ``--recipe``: every value of its table (RELEASED_RECIPE, JOURNAL_RECIPE, JOURNAL_FINETUNE_RECIPE)
        that the command line does not name."""
        for key, value in RECIPE_VALUES.get(opt.recipe, {}).items():
            if key not in opt.explicit and hasattr(opt, key):
                setattr(opt, key, value)

    def validate(self, opt):
        """Reject training options that cannot work (the model checks its own when it is built)."""
        BaseOptions.validate(self, opt)
        for flag in ('print_freq', 'save_epoch_freq', 'n_epochs'):
            if getattr(opt, flag) < 1:
                raise SystemExit(f'error: --{flag} must be at least 1')
        if opt.n_epochs_decay < 0 or opt.save_latest_freq < 0:
            raise SystemExit('error: --n_epochs_decay and --save_latest_freq must not be negative')
        if not opt.lr >= 0 or not math.isfinite(opt.lr):
            raise SystemExit(f'error: --lr must be a number of 0 or more (0 trains nothing), got {opt.lr}')
        for flag in ('beta1', 'beta2'):
            if not 0 <= getattr(opt, flag) < 1:
                raise SystemExit(f'error: --{flag} must lie in [0, 1), got {getattr(opt, flag)}')
        if not opt.eps > 0 or not opt.weight_decay >= 0 or not opt.warmup_epochs >= 0:
            raise SystemExit('error: --eps must be above 0, --weight_decay and --warmup_epochs not negative')
        if opt.lr_policy == 'step' and opt.lr_decay_iters < 1:
            raise SystemExit(f'error: --lr_decay_iters must be at least 1 for --lr_policy step (epochs between '
                             f'decays), got {opt.lr_decay_iters}')
        if opt.pretrained_name:
            try:
                runs.check_name(opt.pretrained_name, '--pretrained_name', 'it names <checkpoints_dir>/<name>')
                runs.check_name(opt.pretrained_epoch, '--pretrained_epoch', 'it names <epoch>_net_*.pth files',
                                'checkpoint tag')
            except ValueError as err:
                raise SystemExit(f'error: {err}') from None
        if opt.continue_train and opt.overwrite:
            raise SystemExit('error: --continue_train resumes the run in the folder and --overwrite replaces it; '
                             'give one of them')

    def prepare(self, opt):
        """Before the option table is written into the experiment folder (rank 0): refuse a folder that another
        training holds or that holds a run (unless --continue_train or --overwrite), and with ``--overwrite`` move
        the run there aside."""
        if opt.rank != 0:
            return
        check_run_folder(opt)
        folder = os.path.join(opt.checkpoints_dir, opt.name)
        if opt.overwrite and os.path.isdir(folder):
            moved = runs.move_aside(folder)
            if moved:
                logging.getLogger(__name__).warning('--overwrite: the run that was in %s is now in %s', folder, moved)


def check_run_folder(opt):
    """Refuse to train into a folder that another training holds (its lock), or that holds a run, unless
    ``--continue_train`` or ``--overwrite`` says what to do with it."""
    folder = os.path.join(opt.checkpoints_dir, opt.name)
    lock = runs.RunLock(folder)
    if getattr(opt, 'break_lock', False):
        owner = lock.break_lock()
        if owner:
            logging.getLogger(__name__).warning('--break_lock: removed the lock of %s in %s', owner, folder)
    try:
        lock.check()
    except runs.RunFolderError as err:
        raise SystemExit(f'error: {err}') from None
    found = runs.run_files(folder)
    if found and not (opt.continue_train or opt.overwrite):
        shown = ', '.join(found[:4]) + (f' and {len(found) - 4} more' if len(found) > 4 else '')
        raise SystemExit(f'error: {folder} already holds a training run ({shown}); resume it with --continue_train, '
                         f'start it over with --overwrite (the old files are moved into a replaced-<time> folder '
                         f'there), or choose another --name')
