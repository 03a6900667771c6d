"""The --simulate barcode scanner types into the real decoder."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from agent.domain.events import EventKind
from agent.simulator.barcode import SimulatedBarcodeBackend
from tests.support.driver_context import RecordingDriverContext

CCCD = "001099012345|123456789|Nguyễn Văn Canary|01021990|Nam|Số 1 Hà Nội|15082021"


async def test_injected_scans_go_through_the_decoder(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    context = RecordingDriverContext(tmp_path, simulated=True)
    backend = SimulatedBarcodeBackend(context, {})
    await backend.start()
    scanner = backend.device
    assert scanner is not None
    await scanner.open()
    scanner.inject(CCCD)
    scanner.inject("Ab-12/{}")
    scans = [e for e in context.events if e.kind is EventKind.BARCODE_SCANNED]
    assert [e.payload.decode() for e in scans] == [CCCD, "Ab-12/{}"]
    assert [e.attributes["cccd_qr"] for e in scans] == ["true", "false"]
    assert scanner.scans_seen() == 2
    assert "Canary" not in caplog.text
    await backend.stop()


async def test_demo_scans_repeat(tmp_path: Path) -> None:
    context = RecordingDriverContext(tmp_path, simulated=True)
    backend = SimulatedBarcodeBackend(context, {"demo_scans": ["8934567890123"], "demo_interval": 0.01})
    await backend.start()
    event = await context.next_event(lambda e: e.kind is EventKind.BARCODE_SCANNED, timeout=10)
    assert event.payload == b"8934567890123"
    await backend.stop()
