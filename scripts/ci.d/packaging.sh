#!/usr/bin/env bash
# Debian packages: build, install, check, upgrade, remove, purge (issue 9).
exec "$(dirname "$0")/../ci-packaging.sh"
