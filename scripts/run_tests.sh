#!/usr/bin/env bash
# Set up the environment (see scripts/setup_env.sh), then run the test suite. Extra arguments go to pytest.
#
#   bash scripts/run_tests.sh            # everything
#   bash scripts/run_tests.sh -k metrics # a subset
#   bash scripts/run_tests.sh -m "not slow"   # the fast tier (tests/slow_tests.txt lists the others)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup_env.sh requirements-dev.txt
"$PY" -m pytest "$@"
