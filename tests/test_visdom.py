"""Watching training: a real visdom server receives the plots; without a server, one warning and training goes on;
the HTML page is written either way."""
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import pytest

from tests.conftest import free_port, run_training, unavailable

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def ensure_visdom_page(detail=''):
    """Install visdom's page files from npm where they are missing, as the README tells a user; skip (fail under
    .ci/run) where npm cannot fetch them. ``detail`` is added to the reason."""
    from scripts import visdom_static
    if not visdom_static.missing():
        return
    fetched = subprocess.run([sys.executable, '-m', 'scripts.visdom_static', '--from_npm'], cwd=ROOT,
                             capture_output=True, text=True)
    if visdom_static.missing():
        unavailable(f'visdom\'s page files are not installed and npm could not fetch them here '
                    f'({fetched.stderr.strip()[-300:]}){detail}', 'VFD_REQUIRE_BROWSER')


def wait_for_port(port, timeout=60):
    end = time.time() + timeout
    while time.time() < end:
        with socket.socket() as s:
            if s.connect_ex(('127.0.0.1', port)) == 0:
                return True
        time.sleep(0.2)
    return False


@pytest.fixture
def visdom_server(tmp_path):
    """A real visdom server on a free loopback port (started like scripts/visdom_server.sh), stopped by its pid."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, '-c', 'from visdom.server.run_server import main; main()',
                             '-port', str(port), '-env_path', str(tmp_path / 'visdom') + '/', '-bind_local',
                             '-logging_level', 'WARNING'],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        assert wait_for_port(port), 'the visdom server did not start'
        yield port
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)


@pytest.fixture
def visdom_env_path(tmp_path):
    return tmp_path / 'visdom'


def test_losses_and_validation_auc_reach_a_real_visdom_server(visdom_server, visdom_env_path, sample_root, tmp_path):
    import visdom
    assert run_training(sample_root, tmp_path, '--display_id', '1', '--display_server', 'http://127.0.0.1',
                        '--display_port', str(visdom_server), '--display_env', 'vfd_test', '--no_html') == 0
    records = [json.loads(line) for line in open(tmp_path / 'ck' / 'watched' / 'metrics.jsonl')]
    steps = sum(r['type'] == 'train' for r in records)
    assert steps == 12  # 24 training clips / batch 4 = 6 steps per epoch, a loss line every step, 2 epochs
    client = visdom.Visdom(server='http://127.0.0.1', port=visdom_server, env='vfd_test', use_incoming_socket=False,
                           raise_exceptions=True)
    traces, layouts = {}, {}
    for window in ('loss', 'distances', 'monitor', 'val_auc'):   # the distances apart from the loss they dwarf
        data = json.loads(client.get_window_data(win=f'watched_{window}', env='vfd_test'))
        traces[window] = {trace.get('name') or window: trace for trace in data['content']['data']}
        layouts[window] = data['content']['layout']
    assert set(traces['distances']) == {'dist_pos', 'dist_neg'} and set(traces['monitor']) == {'active', 'spread'}
    train = [r for r in records if r['type'] == 'train']
    for trace in [*traces['distances'].values(), *traces['monitor'].values(), *traces['loss'].values()]:
        assert trace['x'] == [r['total_iters'] for r in train]     # the training step, as on the HTML page
    assert list(traces['loss'].values())[0]['y'][0] == pytest.approx(train[0]['losses']['triplet'])
    assert all(layout['xaxis']['title'] in ('training step', {'text': 'training step'}) for layout in layouts.values())
    auc = list(traces['val_auc'].values())[0]
    val = [r for r in records if r['type'] == 'val']
    assert auc['x'] == [r['total_iters'] for r in val] and auc['y'] == pytest.approx([r['auc'] for r in val])
    saved = json.loads((visdom_env_path / 'vfd_test.json').read_text())   # kept for a restarted server
    assert {f'watched_{w}' for w in ('loss', 'distances', 'monitor', 'val_auc')} <= set(saved['jsons'])


def test_unreachable_server_gives_one_warning_and_training_goes_on(sample_root, tmp_path, caplog):
    caplog.set_level(logging.WARNING)
    assert run_training(sample_root, tmp_path, '--display_id', '1', '--display_server', 'http://127.0.0.1',
                        '--display_port', str(free_port()), '--no_html') == 0
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    # one warning about visdom, however many steps try to plot; the only other warnings this tiny run may give are
    # the collapse monitor's (12 steps on 6 identities may leave the validation AUC at chance) and the one about
    # its small validation set (8 reals)
    about_visdom = [w for w in warnings if 'visdom' in w]
    others = [w for w in warnings if 'visdom' not in w and not w.startswith('the validation set holds only')]
    assert len(about_visdom) == 1 and all(w.startswith('COLLAPSE') for w in others), warnings
    assert 'scripts/visdom_server.sh' in about_visdom[0] and '--display_id 0' in about_visdom[0]
    assert (tmp_path / 'ck' / 'watched' / '2_net_G_audio.pth').is_file()


def test_html_page_shows_curves_and_validation_faces(watched_run, sample_root, tmp_path):
    shutil.copytree(watched_run, tmp_path / 'ck')        # the shared run stays as it is
    web = tmp_path / 'ck' / 'watched' / 'web'
    page = (web / 'index.html').read_text()
    for image in ('images/loss.png', 'images/distances.png', 'images/monitor.png', 'images/val_auc.png',
                  'images/epoch001_face0.png', 'images/epoch002_face3.png'):
        assert image in page and (web / image).stat().st_size > 0
    assert 'own voice d=' in page and 'other voices d=' in page
    # a resumed run keeps the earlier validations on the page
    assert run_training(sample_root, tmp_path, '--display_id', '0', '--continue_train', '--n_epochs', '3') == 0
    page = (web / 'index.html').read_text()
    assert 'images/epoch001_face0.png' in page and 'images/epoch003_face0.png' in page


def page_references(html):
    """The src of every script and the href of every stylesheet or icon link of a page (comments excluded)."""
    from html.parser import HTMLParser

    class Refs(HTMLParser):
        def __init__(self):
            super().__init__()
            self.refs = []

        def handle_starttag(self, tag, attrs):
            attrs = dict(attrs)
            if tag == 'script' and attrs.get('src'):
                self.refs.append(attrs['src'])
            elif tag == 'link' and attrs.get('href'):
                self.refs.append(attrs['href'])

    parser = Refs()
    parser.feed(html)
    return parser.refs


def http_status(url):
    import urllib.error
    import urllib.request
    try:
        with urllib.request.urlopen(url, timeout=30) as answer:
            return answer.status
    except urllib.error.HTTPError as err:
        return err.code


def test_the_server_started_as_the_readme_says_serves_its_page_and_every_file_it_references(tmp_path):
    """`bash scripts/visdom_server.sh`: HTTP 200 for the page (tornado 6.6 answered 403) and, once the page's
    files are in place (npm here; skipped where neither they nor npm are), for every file the page loads."""
    import urllib.parse
    port = free_port()
    proc = subprocess.Popen(['bash', 'scripts/visdom_server.sh', '--port', str(port), '--env_path',
                             str(tmp_path / 'env'), '--bind_local'], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        assert wait_for_port(port, timeout=300), 'the server did not start'
        base = f'http://127.0.0.1:{port}/'
        assert http_status(base) == 200
        ensure_visdom_page('; the page itself answered 200')
        import urllib.request
        with urllib.request.urlopen(base, timeout=30) as answer:
            refs = page_references(answer.read().decode())
        assert len(refs) >= 15
        failed = {ref: status for ref in refs if (status := http_status(urllib.parse.urljoin(base, ref))) != 200}
        assert not failed, failed
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)


def test_the_page_files_are_listed_when_missing_and_copied_from_a_folder(tmp_path, capsys):
    from scripts import visdom_static
    empty = tmp_path / 'static'
    empty.mkdir()
    lacking = visdom_static.missing(str(empty))
    assert 'js/plotly-plotly.min.js' in lacking and 'js/layout_bin_packer.js' in lacking
    assert visdom_static.main(['--check', '--static', str(empty)]) == 1
    assert '--from_npm' in capsys.readouterr().err     # says how to get them
    ensure_visdom_page()
    assert visdom_static.main(['--from', visdom_static.static_dir(), '--static', str(empty)]) == 0
    assert visdom_static.missing(str(empty)) == []


def test_a_hung_server_never_blocks_the_training_thread_and_plots_resume(caplog):
    """The sender thread waits on a server that does not answer; submitting stays instant, the oldest waiting
    plots are dropped (each redraws its whole window), one warning, and the plots resume when it answers."""
    import threading
    from util.live_plots import LivePlots
    caplog.set_level(logging.INFO)
    answering = threading.Event()
    drawn = []

    class HungVisdom:
        def line(self, **kwargs):
            answering.wait()          # a SIGSTOPped server: the request never returns until it is continued
            drawn.append(kwargs['Y'])

    live = LivePlots('http://127.0.0.1', 1, 'env', probe=False, max_waiting=4)
    live._connect = HungVisdom
    start = time.perf_counter()
    for step in range(200):
        live.submit(lambda vis, step=step: vis.line(Y=step))
    assert time.perf_counter() - start < 1.0        # never waited on the server
    assert live.dropped > 0
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and 'not answering' in warnings[0]
    answering.set()                                  # the server is continued
    end = time.time() + 10
    while not live.idle() and time.time() < end:
        time.sleep(0.05)
    assert drawn[-1] == 199 and len(drawn) <= 6      # the latest state arrives; most stale redraws were skipped
    assert any('answers again' in r.getMessage() for r in caplog.records)
    live.close()


def test_training_with_a_stopped_server_finishes(visdom_server, sample_root, tmp_path, caplog):
    """A SIGSTOPped visdom server for the whole run: training ends normally, with one warning about visdom."""
    caplog.set_level(logging.WARNING)
    server_pids = [int(p) for p in os.listdir('/proc') if p.isdigit() and p != str(os.getpid())
                   and _cmdline(p).endswith(f'-port\x00{visdom_server}\x00-env_path\x00' + str(tmp_path / 'visdom')
                                            + '/\x00-bind_local\x00-logging_level\x00WARNING\x00')]
    assert server_pids
    for pid in server_pids:
        os.kill(pid, signal.SIGSTOP)
    try:
        start = time.perf_counter()
        assert run_training(sample_root, tmp_path, '--display_id', '1', '--display_server', 'http://127.0.0.1',
                            '--display_port', str(visdom_server), '--no_html') == 0
        stopped = time.perf_counter() - start
    finally:
        for pid in server_pids:
            os.kill(pid, signal.SIGCONT)
    about_visdom = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING
                    and 'visdom' in r.getMessage()]
    assert len(about_visdom) == 1, about_visdom
    print(f'training with a stopped visdom server: {stopped:.1f} s')


def _cmdline(pid):
    try:
        with open(f'/proc/{pid}/cmdline') as handle:
            return handle.read()
    except OSError:
        return ''


def test_face_captions_never_read_nan():
    from util.visualizer import face_caption
    assert face_caption(1.234, 5.678) == 'own voice d=1.23; other voices d=5.68'
    fine_tuning = face_caption(1.234, float('nan'))     # a voice paired with its own video's face only
    assert 'nan' not in fine_tuning and 'd=1.23' in fine_tuning
    assert 'nan' not in face_caption(float('nan'), float('nan'))


def test_a_page_rewrite_redraws_only_the_panels_with_new_points(tmp_path, monkeypatch):
    """A collapse report rewrites the page right after the validation did, with no new point: no panel is drawn
    again; a new loss line redraws the loss panels, not the AUC one; a panel file that went missing is drawn."""
    from types import SimpleNamespace

    from util import plots, visualizer
    opt = SimpleNamespace(name='page', checkpoints_dir=str(tmp_path), no_html=False, display_id=0,
                          display_winsize=64)
    drawn = []
    real_plot = plots.line_plot
    monkeypatch.setattr(plots, 'line_plot', lambda path, *a: (drawn.append(os.path.basename(path)),
                                                              real_plot(path, *a)))
    vis = visualizer.Visualizer(opt)
    losses = {'triplet': 1.0, 'dist_pos': 2.0, 'dist_neg': 3.0, 'active': 1.0, 'spread': 0.5}
    vis.print_current_losses(1, 1, 1, losses, 0.1, 0.0, 0.001)
    vis.print_validation(1, 1, {'auc': 0.6, 'ap': 0.5, 'eer': 0.4, 'eer_threshold': -1.0, 'n_real': 2, 'n_fake': 2})
    assert sorted(drawn) == ['distances.png', 'loss.png', 'monitor.png', 'val_auc.png']
    drawn.clear()
    vis.report_collapse({'type': 'collapse', 'epoch': 1, 'total_iters': 1, 'reasons': ['a test'], 'new': True})
    assert drawn == [] and 'a test' in (tmp_path / 'page' / 'web' / 'index.html').read_text()
    vis.print_current_losses(1, 2, 2, losses, 0.1, 0.0, 0.001)
    os.remove(tmp_path / 'page' / 'web' / 'images' / 'val_auc.png')
    vis.update_page()
    assert sorted(drawn) == ['distances.png', 'loss.png', 'monitor.png', 'val_auc.png']
    drawn.clear()
    vis.print_current_losses(1, 3, 3, losses, 0.1, 0.0, 0.001)
    vis.update_page()
    assert sorted(drawn) == ['distances.png', 'loss.png', 'monitor.png']
