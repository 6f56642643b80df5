#!/usr/bin/env bash
# Set up the Python environment once: sourced by scripts/demo.sh and scripts/run_tests.sh.
#
#   source scripts/setup_env.sh [requirements file]     (default requirements.txt)
#
# Uses the active virtualenv, or the active conda environment other than "base", when there is one (a GPU
# machine keeps its own torch build); otherwise creates ./.venv (with VFD_SYSTEM_SITE=1 it sees the system's
# packages, e.g. a preinstalled torch).
# Leaves $PY pointing at the environment's python.
set -euo pipefail
VFD_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
REQUIREMENTS="${1:-requirements.txt}"
if [ -n "${VIRTUAL_ENV:-}" ] || { [ -n "${CONDA_PREFIX:-}" ] && [ "${CONDA_DEFAULT_ENV:-base}" != base ]; }; then
    PY="$(command -v python)"
else
    if [ ! -x "$VFD_ROOT/.venv/bin/python" ]; then
        echo "== creating the virtualenv $VFD_ROOT/.venv"
        if [ "${VFD_SYSTEM_SITE:-0}" = 1 ]; then
            python3 -m venv --system-site-packages "$VFD_ROOT/.venv"
        else
            python3 -m venv "$VFD_ROOT/.venv"
        fi
    fi
    PY="$VFD_ROOT/.venv/bin/python"
fi
stamp="$VFD_ROOT/.venv-stamp-$(basename "$REQUIREMENTS")"
if [ ! -f "$stamp" ] || [ "$VFD_ROOT/$REQUIREMENTS" -nt "$stamp" ] || [ "$VFD_ROOT/requirements.txt" -nt "$stamp" ] \
        || ! "$PY" -c "import importlib.util as u, sys; sys.exit(any(u.find_spec(m) is None for m in (
            'torch', 'torchvision', 'librosa', 'scipy', 'visdom', 'dominate', 'matplotlib', 'av', 'dlib')))" \
            >/dev/null 2>&1; then
    echo "== installing $REQUIREMENTS into $("$PY" -c 'import sys; print(sys.prefix)')"
    # visdom builds from source and imports pkg_resources, which setuptools 82 removed: build it without
    # isolation, against a setuptools below 82 installed first
    "$PY" -m pip install --disable-pip-version-check -q "setuptools>=70.1,<82" wheel
    "$PY" -m pip install --disable-pip-version-check -q --no-build-isolation -r "$VFD_ROOT/$REQUIREMENTS"
    # librosa's numba functions compile at their first use and stay cached in its __pycache__: compile them here,
    # once per install (about 25 s on 2 cores), rather than in the first preprocessing run or test
    "$PY" -c "import numpy, librosa; librosa.stft(numpy.zeros(4096, numpy.float32))" >/dev/null
    touch "$stamp"
fi
export PY VFD_ROOT
