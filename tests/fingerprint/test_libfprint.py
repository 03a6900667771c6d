"""The libfprint backend against libfprint's virtual drivers, fed real NIST prints."""

from __future__ import annotations

import asyncio
import os

import pytest

from agent.domain.device import DeviceFamily, DeviceState
from agent.domain.events import EventKind
from agent.domain.fingerprint import EnrollProgress, FingerprintTemplate, TemplateFormat
from agent.drivers.fingerprint.libfprint_backend import LibfprintSensor
from agent.errors import (
    DataFormatError,
    DeviceBusyError,
    DeviceGoneError,
    DeviceProtocolError,
    NotSupportedError,
    OperationTimeoutError,
    TransientDeviceError,
)
from tests.fingerprint.conftest import FingerPeer, finger_needed, press_when_needed
from tests.support.driver_context import RecordingDriverContext


async def enroll(sensor: LibfprintSensor, context: RecordingDriverContext, finger: FingerPeer,
                 *presses: str) -> tuple[FingerprintTemplate, list[EnrollProgress]]:
    progress: list[EnrollProgress] = []
    feeding = asyncio.create_task(press_when_needed(context, finger, *presses))
    template = await sensor.enroll(progress.append, timeout=60)
    await feeding
    return template, progress


async def test_whorl_enrolls_then_verifies_and_tented_arch_is_rejected(
        image_sensor: LibfprintSensor, context: RecordingDriverContext, finger: FingerPeer) -> None:
    stages = image_sensor.fingerprint_capabilities().enroll_stages
    template, progress = await enroll(image_sensor, context, finger, *["whorl"] * stages)
    assert template.format is TemplateFormat.LIBFPRINT
    assert [p.stage for p in progress] == list(range(1, stages + 1))

    feeding = asyncio.create_task(press_when_needed(context, finger, "whorl"))
    assert (await image_sensor.verify(template, timeout=30)).matched
    await feeding
    feeding = asyncio.create_task(press_when_needed(context, finger, "tented_arch"))
    assert not (await image_sensor.verify(template, timeout=30)).matched
    await feeding


async def test_identify_finds_the_whorl_among_caller_templates(
        image_sensor: LibfprintSensor, context: RecordingDriverContext, finger: FingerPeer) -> None:
    stages = image_sensor.fingerprint_capabilities().enroll_stages
    loop_template, _ = await enroll(image_sensor, context, finger, *["loop-right"] * stages)
    whorl_template, _ = await enroll(image_sensor, context, finger, *["whorl"] * stages)

    feeding = asyncio.create_task(press_when_needed(context, finger, "whorl"))
    result = await image_sensor.identify([loop_template, whorl_template], timeout=30)
    await feeding
    assert result.index == 1

    feeding = asyncio.create_task(press_when_needed(context, finger, "tented_arch"))
    result = await image_sensor.identify([loop_template, whorl_template], timeout=30)
    await feeding
    assert result.index == -1


async def test_capture_returns_the_pressed_image(
        image_sensor: LibfprintSensor, context: RecordingDriverContext, finger: FingerPeer) -> None:
    feeding = asyncio.create_task(press_when_needed(context, finger, "whorl"))
    image = await image_sensor.capture(timeout=30)
    await feeding
    assert (image.width, image.height) == (250, 234)
    assert len(image.pixels) == image.width * image.height
    assert "redacted" in repr(image)


async def test_garbage_template_fails_before_the_sensor_is_touched(
        image_sensor: LibfprintSensor, context: RecordingDriverContext) -> None:
    context.events.clear()
    for template in (FingerprintTemplate(TemplateFormat.LIBFPRINT, b"\x00garbage-not-a-print" * 10),
                     FingerprintTemplate(TemplateFormat.LIBFPRINT, b""),
                     FingerprintTemplate(TemplateFormat.ZFM, b"\x03\x01" * 256)):
        with pytest.raises(DataFormatError):
            await image_sensor.verify(template, timeout=5)
        with pytest.raises(DataFormatError):
            await image_sensor.identify([template], timeout=5)
    assert not [e for e in context.events if e.kind is EventKind.FINGER_STATUS]
    assert image_sensor.health().state is DeviceState.READY


async def test_sensor_unplugged_mid_enrolment_is_device_gone(
        image_sensor: LibfprintSensor, context: RecordingDriverContext, finger: FingerPeer) -> None:
    progress: list[EnrollProgress] = []
    feeding = asyncio.create_task(press_when_needed(context, finger, "whorl", "whorl", "UNPLUG"))
    with pytest.raises(DeviceGoneError):
        await image_sensor.enroll(progress.append, timeout=30)
    await feeding
    assert [p.stage for p in progress] == [1, 2]
    assert image_sensor.health().state is DeviceState.GONE
    async with asyncio.timeout(10):
        while not context.lost:
            await asyncio.sleep(0.01)
    assert context.lost == [(DeviceFamily.FINGERPRINT, "libfprint", "virtual_image/0", "removed")]
    with pytest.raises(DeviceGoneError):
        await image_sensor.capture(timeout=5)


async def test_cancelling_the_task_cancels_the_sensor_and_it_stays_usable(
        image_sensor: LibfprintSensor, context: RecordingDriverContext, finger: FingerPeer) -> None:
    capture = asyncio.create_task(image_sensor.capture(timeout=60))
    await context.next_event(finger_needed)
    capture.cancel()
    with pytest.raises(asyncio.CancelledError):
        await capture
    feeding = asyncio.create_task(press_when_needed(context, finger, "arch"))
    image = await image_sensor.capture(timeout=30)
    await feeding
    assert image.width == 256


async def test_no_finger_times_out_and_a_second_caller_is_told_busy(
        image_sensor: LibfprintSensor, context: RecordingDriverContext) -> None:
    first = asyncio.create_task(image_sensor.capture(timeout=1.0))
    await context.next_event(finger_needed)
    with pytest.raises(DeviceBusyError):
        await image_sensor.capture(timeout=1.0)
    with pytest.raises(OperationTimeoutError):
        await first
    assert image_sensor.health().state is DeviceState.READY


# -- virtual_device: scripted scans, retries and errors ------------------------------------------

async def queue(finger: FingerPeer, *commands: str) -> None:
    for command in commands:
        await finger.send(f"DEVICE {command}")


async def test_enrolment_reports_retry_reasons_and_still_completes(
        device_sensor: LibfprintSensor, finger: FingerPeer) -> None:
    stages = device_sensor.fingerprint_capabilities().enroll_stages
    await queue(finger, "SCAN alpha", "RETRY 1", "SCAN alpha", "RETRY 2", "RETRY 3", "RETRY 0",
                *["SCAN alpha"] * (stages - 2))
    progress: list[EnrollProgress] = []
    template = await device_sensor.enroll(progress.append, timeout=30)
    reasons = [p.retry_reason for p in progress if p.retry_reason]
    assert reasons == ["TOO_SHORT", "CENTER_FINGER", "REMOVE_AND_RETRY", "POOR_QUALITY"]
    assert progress[-1].stage == stages
    assert device_sensor.health().counters["retries"] == 4

    await queue(finger, "SCAN alpha")
    assert (await device_sensor.verify(template, timeout=30)).matched
    await queue(finger, "SCAN beta")
    assert not (await device_sensor.verify(template, timeout=30)).matched


@pytest.mark.parametrize(("code", "reason"), [(1, "TOO_SHORT"), (2, "CENTER_FINGER"),
                                              (3, "REMOVE_AND_RETRY"), (0, "POOR_QUALITY")])
async def test_verify_retry_is_a_transient_error_with_its_reason(
        device_sensor: LibfprintSensor, finger: FingerPeer, code: int, reason: str) -> None:
    stages = device_sensor.fingerprint_capabilities().enroll_stages
    await queue(finger, *["SCAN gamma"] * stages)
    template = await device_sensor.enroll(lambda _p: None, timeout=30)
    await queue(finger, f"RETRY {code}")
    with pytest.raises(TransientDeviceError) as caught:
        await device_sensor.verify(template, timeout=30)
    assert caught.value.reason == reason
    assert caught.value.retryable


async def test_device_protocol_error_and_template_from_another_driver(
        device_sensor: LibfprintSensor, finger: FingerPeer) -> None:
    stages = device_sensor.fingerprint_capabilities().enroll_stages
    await queue(finger, *["SCAN delta"] * stages)
    template = await device_sensor.enroll(lambda _p: None, timeout=30)
    await queue(finger, "ERROR 5")  # FP_DEVICE_ERROR_PROTO
    with pytest.raises(DeviceProtocolError):
        await device_sensor.verify(template, timeout=30)
    assert not device_sensor.fingerprint_capabilities().can_identify
    with pytest.raises(NotSupportedError):
        await device_sensor.identify([template], timeout=5)


async def test_a_plain_backend_never_exposes_another_backends_virtual_device(
        image_sensor: LibfprintSensor, context: RecordingDriverContext) -> None:
    from agent.drivers.fingerprint.libfprint_backend import LibfprintBackend

    assert os.environ.get("FP_VIRTUAL_IMAGE")  # set by the fixture's backend
    plain = LibfprintBackend(context, {})
    await plain.start()
    try:
        assert plain.sensors == []
    finally:
        await plain.stop()
    assert os.environ.get("FP_VIRTUAL_IMAGE")  # not its variable to remove
