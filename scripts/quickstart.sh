#!/usr/bin/env bash
# Quick start: install, then run the agent with a simulated device of every family.
# In another terminal:  .venv/bin/centre-agent devices --socket /tmp/centre-agent/agent.sock
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install.sh
mkdir -p /tmp/centre-agent
exec .venv/bin/centre-agent run --simulate --socket /tmp/centre-agent/agent.sock \
  --state-dir /tmp/centre-agent/state "$@"
