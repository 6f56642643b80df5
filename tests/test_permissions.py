"""Files the project writes get the permissions the umask gives (a shared dataset or report must be readable by
the lab's other accounts and a web server), not the 0600 of a temporary file."""
import contextlib
import os
import stat

import test_DF
import train_DF
from scripts import prep_dfdc
from tests.conftest import TINY, dfdc, vox
from tests.media import face_frame, tone, write_video


@contextlib.contextmanager
def umask(mask):
    """This process's umask set to ``mask`` for the block, then put back."""
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def modes(folder):
    """{relative path: permission bits} of every file under ``folder``."""
    out = {}
    for base, _, names in os.walk(folder):
        for name in names:
            path = os.path.join(base, name)
            out[os.path.relpath(path, folder)] = stat.S_IMODE(os.stat(path).st_mode)
    return out


def test_checkpoints_reports_and_prep_outputs_follow_the_umask(sample_root, tmp_path):
    src = tmp_path / 'src'
    src.mkdir()
    write_video(src / 'a.mkv', face_frame(), seconds=4.0, fps=10, audio=tone(4.0))
    (src / 'metadata.json').write_text('{"a.mkv": {"label": "REAL"}}')
    train = ['--dataroot', vox(sample_root), '--name', 'perm', *TINY, '--batch_size', '4', '--negatives', 'sampled',
             '--n_epochs', '1', '--n_epochs_decay', '0', '--num_threads', '0', '--gpu_ids', '-1',
             '--display_id', '0', '--max_dataset_size', '8', '--bn_recalib_batches', '0',
             '--checkpoints_dir', str(tmp_path / 'ck')]
    test = ['--dataroot', dfdc(sample_root), '--name', 'perm', '--gpu_ids', '-1', '--num_threads', '0',
            '--checkpoints_dir', str(tmp_path / 'ck'), '--results_dir', str(tmp_path / 'res')]
    with umask(0o027):     # in this process: anything that kept the umask it found at import would show
        assert train_DF.main(train) == 0
        assert test_DF.main(test) == 0
        assert prep_dfdc.main(['--src', str(src), '--out', str(tmp_path / 'prep'), '--detector', 'none']) == 0
    written = {**{f'ck/{k}': v for k, v in modes(tmp_path / 'ck').items()},
               **{f'res/{k}': v for k, v in modes(tmp_path / 'res').items()},
               **{f'prep/{k}': v for k, v in modes(tmp_path / 'prep').items()}}
    for needed in ('ck/perm/latest_net_G_audio.pth', 'ck/perm/latest_train_state.pth', 'ck/perm/train_opt.json',
                   'ck/perm/metrics.jsonl', 'ck/perm/web/index.html', 'res/perm/DFDC_all_sound_latest/scores.csv',
                   'res/perm/DFDC_all_sound_latest/summary.json', 'res/perm/DFDC_all_sound_latest/index.html',
                   'prep/audio_feat/a.npy', 'prep/real/a.jpg', 'prep/skipped.csv', 'prep/videos.csv'):
        assert needed in written, needed
    wrong = {path: oct(mode) for path, mode in written.items() if mode != 0o640}
    assert not wrong, wrong    # 0666 & ~0027 for every file, whoever wrote it


def test_the_umask_is_read_when_a_file_is_written_not_at_import(tmp_path):
    from util import util
    with umask(0o077):
        assert util.current_umask() == 0o077
        util.atomic_write_text(str(tmp_path / 'a.txt'), 'x')
    with umask(0o002):
        util.atomic_write_text(str(tmp_path / 'b.txt'), 'x')
    assert modes(tmp_path) == {'a.txt': 0o600, 'b.txt': 0o664}
