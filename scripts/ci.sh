#!/usr/bin/env bash
# The one test command: install everything on a fresh Debian 12 machine, then run every check.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install.sh
for extra in scripts/ci.d/*.sh; do
  [ -e "$extra" ] || continue
  echo "== $extra"
  bash "$extra"
done
scripts/test.sh "$@"
