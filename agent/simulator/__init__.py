"""Emulated devices for ``centre-agent run --simulate`` and for tests.

Each family's simulator goes through the same driver contract as real hardware;
where a real protocol exists the emulator speaks it, so the real driver code runs.
"""
