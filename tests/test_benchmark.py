"""scripts/benchmark.py and scripts/plot_curves.py: the rows the benchmark appends, from a real (tiny) run, and the
figures drawn from metrics.jsonl files."""
import os

import pytest

from scripts import benchmark, plot_curves

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_a_detect_row_names_its_time_memory_and_largest_costs():
    record = {'median': 1 / 9.5, 'max': 1 / 9.3, 'min': 1 / 9.6, 'child_peak_bytes': 2 * 2 ** 30, 'windows': 5,
              'first_run': 10.1, 'costs': {'mels': 1.7, 'model loaded': 2.4, 'imports (new process)': 2.6}}
    row = benchmark.table_row('detect', 'this project', 's', record, {})
    assert row.startswith('| detect | this project | 9.5 s to verdict | 9.3-9.6 | 2.00 GiB |')
    assert row.index('imports (new process) 2.6 s') < row.index('model loaded 2.4 s') < row.index('mels 1.7 s')


@pytest.mark.slow
def test_a_tiny_run_appends_its_rows_with_the_command_and_the_commit(tmp_path):
    out = tmp_path / 'bench.md'
    assert benchmark.main(['--config', 'tiny', '--what', 'train,score', '--steps', '2', '--warmup', '1',
                           '--append', str(out), '--note', 'test run', '--data_root', str(tmp_path / 'data')]) == 0
    text = out.read_text()
    assert 'tiny size on cpu (test run)' in text and '- commit: ' in text and '--what train,score' in text
    rows = [line for line in text.splitlines() if line.startswith('| train |') or line.startswith('| score |')]
    assert len(rows) == 2
    assert all(float(row.split('|')[3].split()[0]) > 0 for row in rows)


def test_learning_curves_are_drawn_from_metrics_files(tmp_path):
    out = tmp_path / 'curves.png'
    runs = os.path.join(ROOT, 'docs', 'runs')
    plot_curves.main(['--run', f'a={os.path.join(runs, "tiny_default_a.jsonl")}',
                      '--run', f'b={os.path.join(runs, "tiny_default_b.jsonl")}', '--out', str(out)])
    assert out.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n' and out.stat().st_size > 10000
