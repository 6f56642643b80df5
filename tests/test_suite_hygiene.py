"""The suite's own rules: a test that writes into the working tree fails the run; each test has a time limit."""
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
        done = subprocess.run([sys.executable, '-m', 'pytest', '-q', '-p', 'no:randomly', '-p', 'no:cacheprovider',
                               probe], cwd=ROOT, capture_output=True, text=True, timeout=300)
    finally:
        for path in (probe, written):
            if os.path.exists(path):
                os.remove(path)
    assert done.returncode != 0, done.stdout
    assert '1 passed' in done.stdout and 'the tests changed the working tree' in done.stdout
    assert f'written_by_a_test_{stamp}.txt' in done.stdout
