"""Runs inside ``umockdev-run``: the real evdev backend reads the mocked scanner.

Usage: ``python -m tests.barcode.umockdev_scan <expected scans> [<options JSON> [<udev data dir>]]``;
prints one JSON object with what the backend found, whether it grabbed, and the scans it emitted.
umockdev mocks ``/sys`` and ``/dev`` but not the udev database, so ``udev_only`` reads the
test's own database directory (same file format as ``/run/udev/data``).
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
from pathlib import Path

from agent.domain.events import EventKind
from agent.drivers.barcode.evdev_backend import EvdevBarcodeBackend
from tests.support.driver_context import RecordingDriverContext


async def run(expected: int, options: dict[str, object], udev_data: Path | None) -> dict[str, object]:
    context = RecordingDriverContext(Path(tempfile.gettempdir()))
    backend = EvdevBarcodeBackend(context, {"rescan_interval": 0, "gap": 0.2, **options})
    if udev_data is not None:
        backend.udev_data = udev_data
    await backend.start()
    grabbed = []
    for scanner in backend.scanners:
        await scanner.open()
        grabbed.append(scanner.grabbed)
    scans: list[dict[str, str]] = []
    try:
        async with asyncio.timeout(20):
            while len(scans) < expected:
                event = await context.next_event(lambda e: e.kind is EventKind.BARCODE_SCANNED)
                scans.append({"text": event.payload.decode(), "cccd_qr": event.attributes["cccd_qr"]})
    except TimeoutError:
        pass
    scanners = backend.scanners
    counted = [s.scans_seen() for s in scanners]
    await backend.stop()
    still_grabbed = [s.grabbed for s in scanners]
    return {"found": [d.descriptor.name for d in context.found], "grabbed": grabbed, "scans": scans,
            "counted": counted, "grabbed_after_stop": still_grabbed,
            "keys": [d.descriptor.stable_key for d in context.found]}


def main() -> int:
    options = json.loads(sys.argv[2]) if len(sys.argv) > 2 else {}
    udev_data = Path(sys.argv[3]) if len(sys.argv) > 3 else None
    print(json.dumps(asyncio.run(run(int(sys.argv[1]), options, udev_data))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
