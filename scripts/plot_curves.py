"""Learning curves from the metrics.jsonl files of training runs: a PNG and a Markdown table of the validations.

    python -m scripts.plot_curves --run "new defaults=checkpoints/demo/metrics.jsonl" \
        --run "released recipe=checkpoints/released/metrics.jsonl" --out docs/figures/tiny.png

Each ``--run "label=path"`` is one line per panel: validation AUC, and the mean distances from a voice to its own
face (``dist_pos``) and to other identities' faces (``dist_neg``) on the loss lines, against the minutes since the
run's first loss line (``--x step``: the training step). The table
printed on stdout lists every validation with its step, the minutes since the run's first loss line and the AUC, and
every collapse the run reported.
"""
import argparse
import sys

from util import plots
from util.visualizer import read_metrics


def table(runs):
    """Markdown rows: run, epoch, step, minutes, validation AUC; collapse events after them."""
    lines = ['| run | epoch | step | minutes since the first loss line | validation AUC |', '|---|---|---|---|---|']
    events = []
    for label, records in runs.items():
        start = min((r['time'] for r in records if 'time' in r), default=0.0)
        for r in records:
            if r.get('type') == 'val':
                lines.append(f'| {label} | {r["epoch"]} | {r["total_iters"]} | {(r["time"] - start) / 60:.1f} | '
                             f'{r["auc"]:.4f} |')
            elif r.get('type') in ('collapse', 'collapse_end'):
                events.append(f'- {label}, epoch {r["epoch"]}, step {r["total_iters"]}: {r.get("message", r["type"])}')
    return '\n'.join(lines + ([''] + events if events else []))


def main(argv=None):
    """Draw the curves of the ``--run`` files into ``--out`` and print the validation table; returns 0."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument('--run', action='append', required=True, help='"label=path/to/metrics.jsonl" (repeat)')
    parser.add_argument('--out', required=True, help='the PNG to write')
    parser.add_argument('--title', default='', help='title of the AUC panel')
    parser.add_argument('--x', default='minutes', choices=('minutes', 'step'),
                        help='horizontal axis: minutes since each run\'s first loss line, or the training step')
    args = parser.parse_args(argv)
    runs = {}
    for spec in args.run:
        label, sep, path = spec.partition('=')
        if not sep:
            parser.error(f'--run takes "label=path", got {spec!r}')
        records = read_metrics(path)
        if not records:
            parser.error(f'{path}: no records (not a metrics.jsonl of a training run?)')
        runs[label] = records
    plots.learning_curves(args.out, runs, args.title, args.x)
    print(table(runs))
    return 0


if __name__ == '__main__':
    sys.exit(main())
