#!/usr/bin/env bash
# Set up the environment (see scripts/setup_env.sh), then run the test suite. Extra arguments go to pytest.
#
#   bash scripts/run_tests.sh            # everything
#   bash scripts/run_tests.sh -k metrics # a subset
#   bash scripts/run_tests.sh -m "not slow"   # the fast tier (tests/slow_tests.txt lists the others)
#   bash scripts/run_tests.sh -n 0       # in one process (the default spreads the tests over the cores)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup_env.sh requirements-dev.txt
# one worker process per core (pytest-xdist; at most 8, each with its share of the threads: tests/conftest.py), unless
# the arguments choose (-n 0: everything in this process)
parallel=(-n auto)
for arg in "$@"; do
    case "$arg" in -n|-n[0-9]*|--numprocesses|--numprocesses=*|-nauto|-nlogical) parallel=() ;; esac
done
"$PY" -m pytest ${parallel[@]+"${parallel[@]}"} "$@"
