#!/usr/bin/env bash
# Installs what the benchmark harness runs besides the Rust programs, and only what changed:
#   bench/.venv                  from bench/requirements.txt (run.py, the Python peer)
#   bench/peers/node/node_modules  with npm ci from package-lock.json (the Node peer)
# Each is stamped with the hash of what it was installed from; a warm run does nothing.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

venv_stamp=.venv/.requirements.sha256
want=$( { cat requirements.txt; "${PYTHON:-python3}" --version; } | sha256sum | cut -d' ' -f1)
if [ -x .venv/bin/python ] && [ -f "$venv_stamp" ] && [ "$(cat "$venv_stamp")" = "$want" ]; then
  :
else
  started=$SECONDS
  [ -x .venv/bin/python ] || "${PYTHON:-python3}" -m venv .venv
  .venv/bin/pip install -q --disable-pip-version-check -r requirements.txt
  echo "$want" > "$venv_stamp"
  echo "[bench] bench/.venv ready ($((SECONDS - started)) s)"
fi

node_stamp=peers/node/node_modules/.package-lock.sha256
want=$( { cat peers/node/package-lock.json; node --version; } | sha256sum | cut -d' ' -f1)
if [ -f "$node_stamp" ] && [ "$(cat "$node_stamp")" = "$want" ]; then
  :
else
  started=$SECONDS
  # kafkajs-lz4's lz4 addon is built by node-gyp against the local Node headers.
  (cd peers/node && npm ci --no-audit --no-fund --loglevel=error)
  echo "$want" > "$node_stamp"
  echo "[bench] bench/peers/node/node_modules ready ($((SECONDS - started)) s)"
fi
