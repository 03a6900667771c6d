#!/usr/bin/env bash
# Static checks and the whole test suite. Assumes scripts/install.sh ran.
set -euo pipefail
cd "$(dirname "$0")/.."
V=.venv/bin

echo "== generated protobuf code is up to date"
PYTHON=$V/python scripts/gen-protos >/dev/null 2>&1
if ! git diff --quiet --exit-code -- centre; then
  git --no-pager diff --stat -- centre
  echo "generated code differs from protos/: run scripts/gen-protos and commit" >&2
  exit 1
fi

echo "== ruff"
$V/ruff check .
echo "== mypy --strict"
$V/mypy

echo "== pytest"
$V/python -m pytest -p no:cacheprovider "$@"
