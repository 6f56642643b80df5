"""The suite's own rules: a test that writes into the working tree fails the run; each test has a time limit; a
test that lacks what it needs skips, or fails under .ci/run."""
import os
import subprocess
import sys
import uuid

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.skipif(subprocess.run(['git', 'rev-parse'], cwd=ROOT, capture_output=True).returncode != 0,
                    reason='not a git checkout')
def test_a_test_that_writes_into_the_working_tree_fails_the_run(tmp_path):
    stamp = uuid.uuid4().hex[:8]
    probe = os.path.join(ROOT, 'tests', f'probe_writes_{stamp}_test.py')
    written = os.path.join(ROOT, f'written_by_a_test_{stamp}.txt')
    with open(probe, 'w') as handle:
        handle.write(f'def test_writes():\n    open({written!r}, "w").write("x")\n')
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith('PYTEST_XDIST_')}   # a run of its own
        done = subprocess.run([sys.executable, '-m', 'pytest', '-q', '-p', 'no:randomly', '-p', 'no:cacheprovider',
                               probe], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    finally:
        for path in (probe, written):
            if os.path.exists(path):
                os.remove(path)
    assert done.returncode != 0, done.stdout
    assert '1 passed' in done.stdout and 'the tests changed the working tree' in done.stdout
    assert f'written_by_a_test_{stamp}.txt' in done.stdout


def test_a_missing_need_skips_here_and_fails_where_ci_requires_it(tmp_path, monkeypatch):
    from tests.conftest import unavailable
    monkeypatch.delenv('VFD_REQUIRE_BROWSER', raising=False)
    with pytest.raises(pytest.skip.Exception, match='no Chromium'):
        unavailable('no Chromium', 'VFD_REQUIRE_BROWSER')
    log = tmp_path / 'setup.log'
    log.write_text('E: Unable to locate package chromium-headless-shell\n')
    monkeypatch.setenv('VFD_REQUIRE_BROWSER', '1')
    monkeypatch.setenv('VFD_SETUP_LOG', str(log))
    with pytest.raises(pytest.fail.Exception) as failed:
        unavailable('no Chromium', 'VFD_REQUIRE_BROWSER')
    assert 'no Chromium' in str(failed.value) and 'Unable to locate package' in str(failed.value)


def test_every_test_named_in_the_slow_list_exists():
    """tests/slow_tests.txt marks tests by name; a name that no longer exists (a test renamed or removed) would leave
    its test in the fast tier without a word."""
    import ast
    from tests.conftest import SLOW
    assert SLOW
    for node in sorted(SLOW):
        path, name = node.split('::')
        with open(os.path.join(ROOT, path)) as handle:
            tree = ast.parse(handle.read())
        tests = {f.name for f in tree.body if isinstance(f, ast.FunctionDef)}
        assert name in tests, f'{node} (in tests/slow_tests.txt) is not a test of {path}'
