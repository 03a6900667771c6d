"""Emulated devices for ``centre-agent run --simulate`` and tests, speaking the real protocols."""
