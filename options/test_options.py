"""Test flags (test_DF.py): where results go and how many pairs to score."""
from data import perturb
from util import runs

from .base_options import BaseOptions


class TestOptions(BaseOptions):
    """Score voice-face pairs with a trained VFD model and report AUC, AP and EER (test_DF.py).

    The model config (encoders, sizes, input sizes) is read from the checkpoint when the model is loaded; size
    flags typed here only matter for plain state dicts in the released format, which carry none.
    """

    __test__ = False  # tells pytest this is not a test class

    isTrain = False

    def initialize(self, parser):
        """Add --results_dir, --results_tag, --phase and --video_agg; default --dataset_mode DFDC, --batch_size 16."""
        parser = BaseOptions.initialize(self, parser)
        parser.add_argument('--results_dir', type=str, default='./results',
                            help='per-pair scores and the summary go to <results_dir>/<name>/<tag>/')
        parser.add_argument('--results_tag', type=str, default='',
                            help='sub-folder name for this test run; default <dataroot folder>_<part>_<protocol>_'
                                 '<epoch>, part = the --split_file part tested (--phase) or all')
        parser.add_argument('--overwrite_results', action='store_true',
                            help='let this test replace the results of another test in the --results_tag folder '
                                 '(without it such a folder is refused; the default tag takes another name)')
        parser.add_argument('--phase', type=str, default='test', help='train, val, test, etc.')
        parser.add_argument('--video_agg', choices=('mean', 'median', 'max'), default='mean',
                            help='how the scores of a video\'s windows make its video-level score')
        parser.add_argument('--allow_one_class', action='store_true',
                            help='score a set that holds only reals or only fakes (AUC, AP and EER are then not '
                                 'measurable; the scores and the accuracy at the validation threshold still are); '
                                 'without it such a set is refused with exit status 3 after scoring')
        parser.add_argument('--perturb', type=str, default='',
                            help='robustness test: after the clean set, score it again under each comma-separated '
                                 'condition KIND:LEVEL (several joined with +), kinds h264 (CRF), jpeg (quality), '
                                 'scale (factor), blur (sigma, pixels), noise (sigma, 0-255), snr (dB, voice noise), '
                                 'mp3 and aac (kbit/s); e.g. jpeg:50,h264:35,snr:10 (data/perturb.py)')
        parser.set_defaults(dataset_mode='DFDC', batch_size=16)
        return parser

    def validate(self, opt):
        """The base checks, and a --results_tag that names one folder inside <results_dir>/<name>."""
        BaseOptions.validate(self, opt)
        try:
            perturb.parse(opt.perturb)
        except perturb.PerturbError as err:
            raise SystemExit(f'error: {err}') from None
        if opt.results_tag and not runs.is_plain_name(opt.results_tag):
            raise SystemExit(f'error: --results_tag {opt.results_tag!r} must be a plain folder name (no "/", not '
                             f'"." or ".."): results go to <results_dir>/<name>/<results_tag>')
