"""The ZFM backend through pyserial against a fake module process on a pty."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import serial
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.domain.device import DeviceState
from agent.domain.fingerprint import EnrollProgress, FingerprintTemplate, TemplateFormat
from agent.drivers.fingerprint import zfm_protocol as zfm
from agent.drivers.fingerprint.zfm_backend import ZfmBackend, ZfmSensor
from agent.errors import (
    AccessDeniedError,
    DataFormatError,
    DeviceGoneError,
    DeviceProtocolError,
    DeviceUnavailableError,
    TransientDeviceError,
)
from tests.support.driver_context import RecordingDriverContext

REPO = Path(__file__).resolve().parents[2]


class FakeModule:
    def __init__(self, process: asyncio.subprocess.Process, port: str) -> None:
        self.process = process
        self.port = port

    async def control(self, line: str) -> None:
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        self.process.stdin.write(line.encode() + b"\n")
        await self.process.stdin.drain()
        assert (await self.process.stdout.readline()).strip() == b"OK"


@pytest.fixture
async def module() -> AsyncIterator[FakeModule]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "agent.simulator.zfm_module", cwd=REPO,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
    assert process.stdout is not None
    port = (await process.stdout.readline()).decode().strip()
    yield FakeModule(process, port)
    assert process.stdin is not None
    process.stdin.close()
    try:
        async with asyncio.timeout(10):
            await process.wait()
    except TimeoutError:
        process.kill()
        await process.wait()


async def open_sensor(context: RecordingDriverContext, port: str, **options: object
                      ) -> tuple[ZfmBackend, ZfmSensor]:
    backend = ZfmBackend(context, {"ports": [port], "poll_interval": 0.01, **options})
    await backend.start()
    sensor = backend.sensors[0]
    assert context.found == [sensor]
    await sensor.open()
    return backend, sensor


@pytest.fixture
def context(tmp_path: Path) -> RecordingDriverContext:
    return RecordingDriverContext(tmp_path)


@pytest.fixture
async def sensor(module: FakeModule, context: RecordingDriverContext) -> AsyncIterator[ZfmSensor]:
    backend, opened = await open_sensor(context, module.port)
    yield opened
    await backend.stop()


async def enroll(sensor: ZfmSensor, module: FakeModule, finger: str,
                 retries: tuple[str, ...] = ()) -> tuple[FingerprintTemplate, list[EnrollProgress]]:
    """Enrol with one press per stage; each entry of ``retries`` (a control line) spoils a press."""
    progress: asyncio.Queue[EnrollProgress] = asyncio.Queue()
    seen: list[EnrollProgress] = []
    task = asyncio.create_task(sensor.enroll(progress.put_nowait, timeout=30))
    for spoil in retries:
        await module.control(spoil)
        await module.control(f"PRESS {finger}")
        seen.append(await progress.get())
    for _stage in range(sensor.fingerprint_capabilities().enroll_stages):
        await module.control(f"PRESS {finger}")
        seen.append(await progress.get())
    return await task, seen


async def verify(sensor: ZfmSensor, module: FakeModule, finger: str, template: FingerprintTemplate) -> bool:
    await module.control(f"PRESS {finger}")
    return (await sensor.verify(template, timeout=30)).matched


async def test_enrol_verify_identify(sensor: ZfmSensor, module: FakeModule) -> None:
    template, progress = await enroll(sensor, module, "thumb-a")
    assert template.format is TemplateFormat.ZFM
    assert len(template.data) == 512
    assert [(p.stage, p.retry_reason) for p in progress] == [(1, ""), (2, "")]
    assert await verify(sensor, module, "thumb-a", template)
    assert not await verify(sensor, module, "thumb-b", template)

    other, _ = await enroll(sensor, module, "thumb-b")
    await module.control("PRESS thumb-a")
    result = await sensor.identify([other, template], timeout=30)
    assert (result.index, result.score) == (1, 180)
    await module.control("PRESS thumb-c")
    assert (await sensor.identify([other, template], timeout=30)).index == -1


async def test_poor_presses_are_retried_with_reasons(sensor: ZfmSensor, module: FakeModule) -> None:
    template, progress = await enroll(sensor, module, "index", retries=("IMG2TZ 0x07", "IMG2TZ 0x06"))
    assert [(p.stage, p.retry_reason) for p in progress] == [
        (0, "CENTER_FINGER"), (0, "POOR_QUALITY"), (1, ""), (2, "")]
    await module.control("IMG2TZ 0x07")
    await module.control("PRESS index")
    with pytest.raises(TransientDeviceError) as caught:
        await sensor.verify(template, timeout=30)
    assert caught.value.reason == "CENTER_FINGER"
    assert sensor.health().counters["retries"] == 3


async def test_different_fingers_do_not_make_a_template(sensor: ZfmSensor, module: FakeModule) -> None:
    task = asyncio.create_task(sensor.enroll(lambda _p: None, timeout=30))
    await module.control("PRESS left")
    await asyncio.sleep(0)
    await module.control("PRESS right")
    with pytest.raises(TransientDeviceError) as caught:
        await task
    assert caught.value.reason == "FINGERS_DIFFER"


async def test_checksum_error_garbage_and_silence(sensor: ZfmSensor, module: FakeModule) -> None:
    template, _ = await enroll(sensor, module, "ring")
    await module.control("CORRUPT")
    with pytest.raises(DeviceProtocolError):
        await verify(sensor, module, "ring", template)
    await module.control("GARBAGE")
    with pytest.raises(DeviceProtocolError):
        await verify(sensor, module, "ring", template)
    await module.control("SILENT")
    with pytest.raises(DeviceUnavailableError):
        await verify(sensor, module, "ring", template)
    assert sensor.health().counters["protocol_errors"] == 2
    assert sensor.health().state is DeviceState.ERROR
    # the link recovers: the next exchange is clean
    await module.control("LIFT")
    assert await verify(sensor, module, "ring", template)
    assert sensor.health().state is DeviceState.READY


async def test_garbage_template_never_touches_the_sensor(sensor: ZfmSensor, module: FakeModule) -> None:
    template, _ = await enroll(sensor, module, "pinky")
    await module.control("PRESS pinky")
    for bad in (FingerprintTemplate(TemplateFormat.ZFM, b"junk"),
                FingerprintTemplate(TemplateFormat.ZFM, b"x" * 513),
                FingerprintTemplate(TemplateFormat.LIBFPRINT, template.data)):
        with pytest.raises(DataFormatError):
            await sensor.verify(bad, timeout=5)
    # the press placed before is still unused: the bad calls did not image it
    assert (await sensor.verify(template, timeout=5)).matched


async def test_capture_uploads_the_image(sensor: ZfmSensor, module: FakeModule) -> None:
    await module.control("PRESS thumb")
    image = await sensor.capture(timeout=30)
    assert (image.width, image.height) == (256, 288)
    assert len(image.pixels) == 256 * 288
    assert all(p & 0x0F == 0 for p in image.pixels[:64])


async def test_wrong_password_is_access_denied(module: FakeModule, tmp_path: Path) -> None:
    context = RecordingDriverContext(tmp_path)
    backend = ZfmBackend(context, {"ports": [module.port], "password": 0x1234})
    await backend.start()
    with pytest.raises(AccessDeniedError):
        await backend.sensors[0].open()
    assert backend.sensors[0].health().state is DeviceState.ERROR
    await backend.stop()


def test_link_search_and_framing(module: FakeModule) -> None:
    with serial.Serial(module.port, 57600, timeout=2) as port:
        link = zfm.ZfmLink(port)
        link.verify_password(0)
        assert link.read_system_parameters().packet_size == 128
        assert link.gen_img() == zfm.NO_FINGER
        assert link.search(1, 0, 100) == (-1, 0)
        link.down_char(1, b"\x03\x01" + b"\x42" * 510)
        assert link.command(zfm.STORE, b"\x01\x00\x07").code == zfm.OK
        assert link.search(1, 0, 100) == (7, 150)


def test_packet_encoding_matches_the_datasheet_example() -> None:
    # GenImg as printed in R307/AS608 datasheets
    assert zfm.encode_packet(zfm.PID_COMMAND, b"\x01").hex() == "ef01ffffffff010003010005"


async def test_cancel_while_waiting_for_a_finger_leaves_the_module_usable(
        sensor: ZfmSensor, module: FakeModule) -> None:
    template, _ = await enroll(sensor, module, "middle")
    waiting = asyncio.create_task(sensor.verify(template, timeout=30))
    await asyncio.sleep(0.1)  # a few GenImg polls find no finger
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert await verify(sensor, module, "middle", template)


async def test_module_vanishing_is_device_gone(sensor: ZfmSensor, module: FakeModule,
                                               context: RecordingDriverContext) -> None:
    template, _ = await enroll(sensor, module, "index")
    module.process.kill()
    await module.process.wait()
    with pytest.raises(DeviceGoneError):
        await sensor.verify(template, timeout=5)
    assert sensor.health().state is DeviceState.GONE
    assert [lost[2] for lost in context.lost] == [module.port]


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=64))
def test_any_bytes_from_the_module_are_a_protocol_error_or_a_packet(noise: bytes) -> None:
    port = ScriptedPort(noise)
    link = zfm.ZfmLink(port)
    try:
        packet = link.receive()
    except (DeviceProtocolError, DeviceUnavailableError):
        return
    assert zfm.encode_packet(packet.pid, packet.body) == noise[:len(zfm.encode_packet(packet.pid, packet.body))]


@given(st.sampled_from([zfm.PID_DATA, zfm.PID_ACK, zfm.PID_END]), st.binary(max_size=256))
def test_framing_round_trip(pid: int, body: bytes) -> None:
    assert zfm.ZfmLink(ScriptedPort(zfm.encode_packet(pid, body))).receive() == zfm.Packet(pid, body)


class ScriptedPort:
    """A serial port that answers with fixed bytes."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    def write(self, data: bytes, /) -> int:
        return len(data)

    def read(self, size: int = 1, /) -> bytes:
        chunk, self._data = self._data[:size], self._data[size:]
        return chunk

    def reset_input_buffer(self) -> None:
        self._data = b""
