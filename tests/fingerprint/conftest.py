"""Fixtures: libfprint's virtual drivers with a finger process feeding them real prints."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from agent.domain.events import EventKind
from agent.drivers.fingerprint.libfprint_backend import LibfprintBackend, LibfprintSensor
from tests.support.driver_context import EmittedEvent, RecordingDriverContext

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def prints_dir() -> Path:
    folder = REPO / "tests" / "data" / "fingerprints"
    assert (folder / "whorl.png").is_file(), f"sample prints missing in {folder}"
    return folder


class FingerPeer:
    """The ``agent.simulator.virtual_image`` process, driven line by line."""

    def __init__(self, process: asyncio.subprocess.Process, prints: Path) -> None:
        self.process = process
        self.prints = prints

    async def send(self, line: str) -> str:
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        self.process.stdin.write(line.encode() + b"\n")
        await self.process.stdin.drain()
        reply = (await self.process.stdout.readline()).decode().strip()
        assert reply == "OK", f"peer refused {line.split()[0]}: {reply}"
        return reply

    async def press(self, name: str) -> None:
        await self.send(f"IMAGE {self.prints / (name + '.png')}")

    async def stop(self) -> None:
        if self.process.returncode is None:
            assert self.process.stdin is not None
            self.process.stdin.close()
            try:
                async with asyncio.timeout(10):
                    await self.process.wait()
            except TimeoutError:
                self.process.kill()
                await self.process.wait()


@pytest.fixture
def context(tmp_path: Path) -> RecordingDriverContext:
    return RecordingDriverContext(directory=tmp_path)


@pytest.fixture
async def finger(tmp_path: Path, prints_dir: Path) -> AsyncIterator[FingerPeer]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "agent.simulator.virtual_image",
        "--image-socket", str(tmp_path / "image.sock"), "--device-socket", str(tmp_path / "device.sock"),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, cwd=REPO,
    )
    peer = FingerPeer(process, prints_dir)
    yield peer
    await peer.stop()


async def _backend(context: RecordingDriverContext, options: dict[str, object]
                   ) -> tuple[LibfprintBackend, LibfprintSensor]:
    backend = LibfprintBackend(context, options)
    await backend.start()
    assert len(backend.sensors) == 1
    sensor = backend.sensors[0]
    await sensor.open()
    return backend, sensor


@pytest.fixture
async def image_sensor(tmp_path: Path, context: RecordingDriverContext, finger: FingerPeer
                       ) -> AsyncIterator[LibfprintSensor]:
    """libfprint ``virtual_image`` opened through the real backend."""
    os.environ.pop("FP_VIRTUAL_DEVICE", None)
    backend, sensor = await _backend(context, {"virtual_image_socket": str(tmp_path / "image.sock"),
                                               "drivers": ["virtual_image"]})
    yield sensor
    await backend.stop()
    os.environ.pop("FP_VIRTUAL_IMAGE", None)


@pytest.fixture
async def device_sensor(tmp_path: Path, context: RecordingDriverContext, finger: FingerPeer
                        ) -> AsyncIterator[LibfprintSensor]:
    """libfprint ``virtual_device`` (scripted SCAN/RETRY/ERROR) opened through the real backend."""
    os.environ.pop("FP_VIRTUAL_IMAGE", None)
    backend, sensor = await _backend(context, {"virtual_device_socket": str(tmp_path / "device.sock"),
                                               "drivers": ["virtual_device"]})
    yield sensor
    await backend.stop()
    os.environ.pop("FP_VIRTUAL_DEVICE", None)


def finger_needed(event: EmittedEvent) -> bool:
    return event.kind is EventKind.FINGER_STATUS and event.attributes.get("status") == "needed"


async def press_when_needed(context: RecordingDriverContext, finger: FingerPeer, *presses: str) -> None:
    """Press each print (or send a peer command, written in capitals) as the sensor asks for a finger."""
    for press in presses:
        await context.next_event(finger_needed)
        if press.split()[0].isupper():
            await finger.send(press)
        else:
            await finger.press(press)
