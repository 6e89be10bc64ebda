#!/usr/bin/env bash
# Install everything the test suite needs, then run all of it.
#   - Debian's chromium, for the end-to-end browser tests (Playwright cannot
#     download its own browser on machines without internet);
#   - a virtual environment (.venv, or $VENV) with requirements-dev.txt.
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -m "not e2e and not slow"`.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x /usr/bin/chromium ]; then
  sudo_cmd=""
  if [ "$(id -u)" -ne 0 ]; then sudo_cmd="sudo"; fi
  $sudo_cmd apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -q chromium fonts-dejavu-core
fi

venv="${VENV:-.venv}"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
"$venv/bin/python" -m pip install -q --upgrade pip
"$venv/bin/python" -m pip install -q -r requirements-dev.txt

# Two workers (PYTEST_WORKERS=0 runs in one process): tests wait on trainer
# subprocesses, browsers and clusters, so two share 2 cores well.
exec "$venv/bin/python" -m pytest -n "${PYTEST_WORKERS:-2}" "$@"
