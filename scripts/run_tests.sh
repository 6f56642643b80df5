#!/usr/bin/env bash
# Set up the environment (see scripts/setup_env.sh), then run the test suite. Extra arguments go to pytest.
#
#   bash scripts/run_tests.sh            # everything
#   bash scripts/run_tests.sh -k metrics # a subset
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup_env.sh requirements-dev.txt
"$PY" -m pytest "$@"
