"""Verify round trip: the agent's libfprint backend vs libfprint called directly, same device.

One libfprint ``virtual_image`` device, fed the same real print (whorl) whenever it
asks for a finger; the real NBIS matcher runs (it dominates: ~1 s of CPU per verify).
Each round verifies twice on that device, alternating which path goes first:

* baseline: ``FpDevice.verify_sync`` called directly on the thread that owns GLib's
  default context (the cheapest way to call libfprint from an asyncio program);
* agent: :meth:`LibfprintSensor.verify` (template parsing, cancellable async call,
  result bridged to asyncio, error mapping).

Prints the medians and the ratio (target <= 1.2x); then the same for capture, which
skips the matcher and so shows what the agent's bridge itself costs. Run:
``.venv/bin/python bench/fingerprint_verify.py [rounds]``.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from agent.domain.events import EventKind  # noqa: E402
from agent.drivers.base import Device  # noqa: E402
from agent.drivers.fingerprint.libfprint_backend import LibfprintBackend  # noqa: E402
from agent.simulator.fingerprint import default_prints_dir  # noqa: E402
from agent.simulator.virtual_image import VirtualImageFinger, print_frame  # noqa: E402
from tests.support.driver_context import RecordingDriverContext  # noqa: E402

#: medians of the capture round trips (no matcher: shows the bridge's own cost), filled by run()
CAPTURES: list[float] = []


class FeedingContext(RecordingDriverContext):
    """Presses the whorl whenever the sensor asks for a finger."""

    finger: VirtualImageFinger
    frame: bytes
    presses: set[asyncio.Task[None]]

    def emit(self, device: Device, kind: EventKind, attributes: Mapping[str, str] | None = None,
             payload: bytes = b"") -> None:
        if kind is EventKind.FINGER_STATUS and (attributes or {}).get("status") == "needed":
            task = asyncio.ensure_future(self.finger.send(self.frame))
            self.presses.add(task)
            task.add_done_callback(self.presses.discard)


async def run(rounds: int) -> tuple[list[float], list[float]]:
    tmp = Path(tempfile.mkdtemp(prefix="fp-bench-"))
    socket_path = str(tmp / "image.sock")
    context = FeedingContext(tmp)
    context.finger = VirtualImageFinger(socket_path)
    context.frame = print_frame(default_prints_dir() / "whorl.png")
    context.presses = set()
    backend = LibfprintBackend(context, {"virtual_image_socket": socket_path, "drivers": ["virtual_image"]})
    await backend.start()
    sensor = backend.sensors[0]
    await sensor.open()
    template = await sensor.enroll(lambda _p: None, timeout=60)
    fpdev, glib = sensor._fpdev, sensor._glib  # the same FpDevice, for the direct calls
    enrolled = sensor._parse_template(template)  # FPrint.Print.deserialize

    async def direct() -> float:
        start = time.perf_counter()
        matched, _scan = await glib.run(lambda: fpdev.verify_sync(enrolled, None, None, None))
        elapsed = time.perf_counter() - start
        assert matched
        return elapsed

    async def agent() -> float:
        start = time.perf_counter()
        result = await sensor.verify(template, timeout=60)
        elapsed = time.perf_counter() - start
        assert result.matched
        return elapsed

    async def direct_capture() -> float:
        start = time.perf_counter()
        # a direct caller needs the pixels too
        pixels = await glib.run(lambda: bytes(fpdev.capture_sync(True, None).get_data()))
        elapsed = time.perf_counter() - start
        assert len(pixels) == 250 * 234
        return elapsed

    async def agent_capture() -> float:
        start = time.perf_counter()
        image = await sensor.capture(timeout=60)
        elapsed = time.perf_counter() - start
        assert image.width == 250
        return elapsed

    base: list[float] = []
    ours: list[float] = []
    capture_base: list[float] = []
    capture_ours: list[float] = []
    for round_no in range(rounds):
        pairs = [(direct, base), (agent, ours)]
        for fn, into in pairs if round_no % 2 == 0 else reversed(pairs):
            into.append(await fn())
    for round_no in range(rounds * 5):
        capture_pairs = [(direct_capture, capture_base), (agent_capture, capture_ours)]
        for fn, into in capture_pairs if round_no % 2 == 0 else reversed(capture_pairs):
            into.append(await fn())
    CAPTURES.extend([statistics.median(capture_base), statistics.median(capture_ours)])
    await context.finger.close()
    await backend.stop()
    return base, ours


def main() -> int:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 6
    base, ours = asyncio.run(run(rounds))
    b, o = statistics.median(base), statistics.median(ours)
    print(f"libfprint direct verify_sync: median {b * 1000:.1f} ms ({rounds} rounds)")
    print(f"agent LibfprintSensor.verify: median {o * 1000:.1f} ms ({rounds} rounds)")
    print(f"ratio: {o / b:.2f}x (target <= 1.2x)")
    cb, co = CAPTURES
    print(f"capture (no matcher) direct {cb * 1000:.1f} ms, agent {co * 1000:.1f} ms: ratio {co / cb:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
