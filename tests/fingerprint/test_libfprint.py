"""The libfprint backend against libfprint's virtual drivers, fed real NIST prints."""

from __future__ import annotations

import asyncio

from agent.domain.fingerprint import EnrollProgress, FingerprintTemplate, TemplateFormat
from agent.drivers.fingerprint.libfprint_backend import LibfprintSensor
from tests.fingerprint.conftest import FingerPeer, press_when_needed
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
