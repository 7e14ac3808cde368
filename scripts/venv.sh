#!/usr/bin/env bash
# Creates .venv with the Python tools the tests use (requirements-test.txt); re-installs only
# when the requirements change.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
stamp=.venv/.requirements.sha256
want=$(cat requirements-test.txt tests/deploy/requirements.txt 2>/dev/null | sha256sum | cut -d' ' -f1)
if [ -x .venv/bin/python ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
[ -x .venv/bin/python ] || "${PYTHON:-python3}" -m venv .venv
.venv/bin/pip install -q --disable-pip-version-check -r requirements-test.txt
if [ -f tests/deploy/requirements.txt ]; then
  .venv/bin/pip install -q --disable-pip-version-check -r tests/deploy/requirements.txt
fi
echo "$want" > "$stamp"
echo "[venv] .venv ready"
