"""Emulated devices for ``centre-agent run --simulate`` and for tests; they speak the real protocols."""
