#!/usr/bin/env bash
# Start a visdom server for watching training, also on a machine without internet.
#
#   bash scripts/visdom_server.sh                    # http://localhost:8097, plots kept in ~/.visdom
#   bash scripts/visdom_server.sh --port 8098 --env_path /data/visdom --bind_local
#   bash scripts/visdom_server.sh --fetch_js         # once, on a machine with internet (see below)
#
# `python -m visdom.server` first downloads the JavaScript and CSS of its web page and fails without internet;
# this starts the server itself (visdom.server.run_server.main), so training can always send its plots, and the
# server stores them under --env_path. To SEE them, the browser needs visdom's page dependencies (jQuery,
# Bootstrap, React, Plotly, ...) in visdom's static/ folder: --fetch_js downloads them there (needs internet
# once; or copy <site-packages>/visdom/static from a machine that has them). Offline, the HTML page every run
# writes to checkpoints/<name>/web/index.html shows the same curves with nothing to fetch.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup_env.sh requirements.txt
PORT=8097
ENV_PATH="$HOME/.visdom"
FETCH=0
EXTRA=()
while [ $# -gt 0 ]; do
    case "$1" in
        --port) PORT="$2"; shift 2 ;;
        --env_path) ENV_PATH="$2"; shift 2 ;;
        --fetch_js) FETCH=1; shift ;;
        --bind_local) EXTRA+=(-bind_local); shift ;;
        -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
        *) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done
if [ "$FETCH" = 1 ]; then
    "$PY" -c "from visdom.server.build import download_scripts; download_scripts()"
fi
mkdir -p "$ENV_PATH"
echo "visdom server on http://localhost:$PORT (plots stored in $ENV_PATH); Ctrl-C stops it"
exec "$PY" -c 'from visdom.server.run_server import main; main()' -port "$PORT" -env_path "$ENV_PATH/" \
    -logging_level WARNING ${EXTRA[@]+"${EXTRA[@]}"}
