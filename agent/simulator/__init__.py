"""Emulated devices for ``--simulate`` and the tests, speaking the real protocols."""
