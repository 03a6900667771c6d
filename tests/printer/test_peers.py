"""The mDNS peer fixture itself, on the path taken where mount namespaces are not allowed:
a stale avahi pid file is removed, a running avahi is reused through its own bus."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.printer.peers import AVAHI_RUN_DIR, IppEvePrinter, MdnsStack, _running_avahi


def test_shared_avahi_stale_pid_and_reuse(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CENTRE_TEST_SHARED_AVAHI", "1")
    foreign = _running_avahi()
    if foreign is None:
        AVAHI_RUN_DIR.mkdir(parents=True, exist_ok=True)
        dead = subprocess.Popen(["true"])
        dead.wait()
        (AVAHI_RUN_DIR / "pid").write_text(f"{dead.pid}\n")  # a stale pid file: its process is gone
    first = MdnsStack(tmp_path / "first")
    first.start()
    try:
        assert _running_avahi() is not None
        assert (foreign is None) == bool(first.processes)  # started its own only when none ran
        second = MdnsStack(tmp_path / "second")
        second.start()
        assert second.processes == []  # reused
        assert second.bus_address == first.bus_address
        printer = IppEvePrinter(tmp_path / "printer", second.bus_address)
        printer.start()  # ippeveprinter registers through that avahi, or exits
        printer.stop()
        second.stop()
    finally:
        first.stop()
    if foreign is None:
        assert _running_avahi() is None
