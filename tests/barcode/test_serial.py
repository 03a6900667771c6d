"""Serial barcode scanners through pyserial against a scanner process on a pty."""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from agent.domain.device import DeviceState
from agent.domain.events import EventKind
from agent.drivers.barcode.serial_backend import LineAssembler, SerialBarcodeBackend, SerialBarcodeScanner
from tests.support.driver_context import EmittedEvent, RecordingDriverContext

REPO = Path(__file__).resolve().parents[2]
CCCD = "079203001234|272727272|Trần Thị Bình|24121985|Nữ|12 Lê Lợi, Quận 1, TP Hồ Chí Minh|10052022"


class ScannerPeer:
    def __init__(self, process: asyncio.subprocess.Process, port: str) -> None:
        self.process, self.port = process, port

    async def send(self, line: str) -> None:
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        self.process.stdin.write(line.encode() + b"\n")
        await self.process.stdin.drain()
        assert (await self.process.stdout.readline()).strip() == b"OK"


@pytest.fixture
async def peer() -> AsyncIterator[ScannerPeer]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.barcode.serial_scanner_peer", cwd=REPO,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
    assert process.stdout is not None
    port = (await process.stdout.readline()).decode().strip()
    yield ScannerPeer(process, port)
    assert process.stdin is not None
    process.stdin.close()
    try:
        async with asyncio.timeout(10):
            await process.wait()
    except TimeoutError:
        process.kill()
        await process.wait()


@pytest.fixture
async def scanner(peer: ScannerPeer, tmp_path: Path) -> AsyncIterator[tuple[SerialBarcodeScanner,
                                                                          RecordingDriverContext]]:
    context = RecordingDriverContext(tmp_path)
    backend = SerialBarcodeBackend(context, {"ports": [peer.port], "max_length": 256,
                                             "max_scans_per_second": 5})
    await backend.start()
    device = backend.scanners[0]
    await device.open()
    yield device, context
    await backend.stop()


def scanned(event: EmittedEvent) -> bool:
    return event.kind is EventKind.BARCODE_SCANNED


async def test_cr_lf_terminated_scans_and_cccd_recognised(
        scanner: tuple[SerialBarcodeScanner, RecordingDriverContext], peer: ScannerPeer,
        caplog: pytest.LogCaptureFixture) -> None:
    device, context = scanner
    caplog.set_level(logging.DEBUG)
    await peer.send("SCAN 8934567890123")
    first = await context.next_event(scanned)
    assert first.payload == b"8934567890123"
    assert first.attributes["cccd_qr"] == "false"
    await peer.send("LF " + CCCD)
    second = await context.next_event(scanned)
    assert second.payload.decode() == CCCD
    assert second.attributes["cccd_qr"] == "true"
    assert device.scans_seen() == 2
    assert "8934567890123" not in caplog.text
    assert "272727272" not in caplog.text


async def test_overlong_line_and_flood_are_bounded_states(
        scanner: tuple[SerialBarcodeScanner, RecordingDriverContext], peer: ScannerPeer) -> None:
    device, context = scanner
    await peer.send("FLOOD 3000")
    await peer.send("SCAN after-flood")
    assert (await context.next_event(scanned)).payload == b"after-flood"
    assert device.health().counters["overflows"] == 1
    assert not device.health().conditions  # cleared with the next good line

    await peer.send("BURST 12 same")
    async with asyncio.timeout(10):
        while device.scans_seen() - 1 + device.health().counters["dropped_scans"] < 12:
            await asyncio.sleep(0.01)
    # at most 5 scans a second pass; the rest of the burst is dropped and flagged
    assert device.health().counters["dropped_scans"] >= 7
    assert [c.code for c in device.health().conditions] == ["input-flood"]
    assert {e.payload for e in context.events if scanned(e)} == {b"after-flood", b"same"}
    assert device.health().state is DeviceState.READY


def test_line_assembler_bounds() -> None:
    lines = LineAssembler(max_length=8)
    assert lines.feed(b"12345") == []
    assert lines.feed(b"67\r\n\r\nabc") == [b"1234567"]
    assert lines.feed(b"defghijklmnop") == []
    assert lines.discarding
    assert lines.feed(b"q\rok\n") == [b"ok"]
    assert lines.overflows == 1
