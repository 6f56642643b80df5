#!/usr/bin/env bash
# Start a visdom server for watching training, also on a machine without internet.
#
#   bash scripts/visdom_server.sh                    # http://localhost:8097, plots kept in ~/.visdom
#   bash scripts/visdom_server.sh --port 8098 --env_path /data/visdom --bind_local
#   bash scripts/visdom_server.sh --from_npm         # the page's files from the npm registry (or its mirror), once
#   bash scripts/visdom_server.sh --static_from DIR  # ... or from a visdom/static folder copied from elsewhere
#   bash scripts/visdom_server.sh --fetch_js         # ... or from the CDNs, as visdom itself does
#
# `python -m visdom.server` downloads its page's JavaScript and CSS from CDNs at every start and fails without
# internet; this starts the server itself (visdom.server.run_server.main), so training can always send its plots,
# and the server keeps every environment a run saves under --env_path (a restarted server shows them again). The
# page needs jQuery, Bootstrap, React, Plotly, d3 ... in visdom's static/ folder: the three options above put
# them there (scripts/visdom_static.py), and at every start the script says which are still missing. Offline and
# without them, the HTML page every run writes to checkpoints/<name>/web/index.html shows the same curves.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup_env.sh requirements.txt
PORT=8097
ENV_PATH="$HOME/.visdom"
STATIC=()
EXTRA=()
while [ $# -gt 0 ]; do
    case "$1" in
        --port) PORT="$2"; shift 2 ;;
        --env_path) ENV_PATH="$2"; shift 2 ;;
        --from_npm) STATIC=(--from_npm); shift ;;
        --static_from) STATIC=(--from "$2"); shift 2 ;;
        --fetch_js) STATIC=(--from_cdn); shift ;;
        --bind_local) EXTRA+=(-bind_local); shift ;;
        -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
        *) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done
# fetch what was asked for; then, either way, say which page files are still missing (the server starts anyway)
"$PY" -m scripts.visdom_static ${STATIC[@]+"${STATIC[@]}"} || [ $? = 1 ]
mkdir -p "$ENV_PATH"
echo "visdom server on http://localhost:$PORT (plots stored in $ENV_PATH); Ctrl-C stops it"
exec "$PY" -c 'from visdom.server.run_server import main; main()' -port "$PORT" -env_path "$ENV_PATH/" \
    -logging_level WARNING ${EXTRA[@]+"${EXTRA[@]}"}
