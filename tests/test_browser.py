"""The pages as a person sees them, in a real browser: headless Chromium (Debian's chromium-headless-shell) renders
the visdom page of a short training and the training and test HTML pages. Skipped, with the reason, where Chromium
is not installed; under .ci/run (which installs it) they fail instead."""
import functools
import http.server
import os
import shutil
import signal
import subprocess
import threading

import pytest

import test_DF
from tests.conftest import dfdc, free_port, run_training, unavailable
from tests.test_visdom import ensure_visdom_page, wait_for_port

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BROWSERS = ('chromium-headless-shell', 'chromium', 'chromium-browser', 'google-chrome')


def browser():
    found = next((shutil.which(name) for name in BROWSERS if shutil.which(name)), None)
    if found is None:
        unavailable('no headless Chromium here (apt-get install chromium-headless-shell)', 'VFD_REQUIRE_BROWSER')
    return found


def render(url, *extra, budget=20000):
    """The DOM of ``url`` after Chromium ran its scripts for ``budget`` ms of virtual time (``extra`` flags may add a
    screenshot of the same moment)."""
    done = subprocess.run([browser(), '--no-sandbox', '--disable-gpu', f'--virtual-time-budget={budget}',
                           *extra, '--dump-dom', url], capture_output=True, text=True, timeout=180)
    return done.stdout


@pytest.fixture
def page_server(tmp_path):
    """A static HTTP server over ``tmp_path`` (pages and a checking wrapper share one origin)."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f'http://127.0.0.1:{server.server_address[1]}'
    server.shutdown()


CHECKER = '''<!doctype html><html><body><iframe id="f" src="{page}" width="1200" height="900"></iframe>
<pre id="result">waiting</pre><script>
document.getElementById('f').addEventListener('load', function () {{
  var images = Array.from(this.contentDocument.images);
  var broken = images.filter(function (i) {{ return !(i.complete && i.naturalWidth > 0); }});
  document.getElementById('result').textContent = 'images ' + images.length + ' broken ' + broken.length +
      ' ' + broken.map(function (i) {{ return i.getAttribute('src'); }}).join(' ');
}});
</script></body></html>'''


def images_loaded(base, tmp_path, page):
    """(images on ``page``, broken ones) as Chromium loaded them; ``page`` relative to tmp_path."""
    (tmp_path / 'check.html').write_text(CHECKER.format(page='/' + page))
    dom = render(f'{base}/check.html')
    line = dom.split('<pre id="result">', 1)[1].split('</pre>', 1)[0]
    assert line.startswith('images '), line
    parts = line.split()
    return int(parts[1]), parts[4:]


def test_the_training_and_test_pages_render_with_every_image(watched_run, sample_root, tmp_path, page_server):
    browser()
    shutil.copytree(watched_run, tmp_path / 'ck')       # under the page server's folder, with the test's results
    assert test_DF.main(['--dataroot', dfdc(sample_root), '--name', 'watched', '--checkpoints_dir',
                         str(tmp_path / 'ck'), '--results_dir', str(tmp_path / 'res'), '--gpu_ids', '-1',
                         '--num_threads', '0']) == 0
    for page, at_least in (('ck/watched/web/index.html', 12), ('res/watched/DFDC_all_sound_latest/index.html', 3)):
        count, broken = images_loaded(page_server, tmp_path, page)
        assert count >= at_least and not broken, (page, count, broken)


def test_the_visdom_page_shows_the_windows_of_a_training(sample_root, tmp_path):
    browser()
    ensure_visdom_page()
    port = free_port()
    proc = subprocess.Popen(['bash', 'scripts/visdom_server.sh', '--port', str(port), '--env_path',
                             str(tmp_path / 'env'), '--bind_local'], cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        assert wait_for_port(port, timeout=300)
        assert run_training(sample_root, tmp_path, '--display_id', '1', '--display_server', 'http://127.0.0.1',
                            '--display_port', str(port), '--display_env', 'browser', '--no_html') == 0
        url = f'http://127.0.0.1:{port}/env/browser'
        shot = tmp_path / 'visdom.png'
        dom = render(url, '--window-size=1400,1000', f'--screenshot={shot}')     # one browser run for both
        assert dom.count('js-plotly-plot') >= 4, dom[-2000:]       # loss, distances, monitor, validation AUC
        for title in ('watched: training loss', 'watched: voice-face distances', 'validation AUC'):
            assert title in dom, title
        assert dom.count('class="trace scatter') >= 6               # their curves: 1 + 2 + 2 + 1 traces
        assert shot.stat().st_size > 20000
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
