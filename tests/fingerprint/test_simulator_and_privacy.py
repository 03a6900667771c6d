"""The --simulate sensor (real libfprint, real prints) and the privacy canary."""

from __future__ import annotations

import base64
import logging
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from agent.domain.fingerprint import EnrollProgress, FingerprintTemplate, TemplateFormat
from agent.errors import DataFormatError
from agent.simulator.fingerprint import SimulatedFingerprintBackend, SimulatedFingerprintSensor
from tests.support.driver_context import RecordingDriverContext

CANARY = b"CANARY-7f3a-NGUYEN-VAN-CANARY"


@pytest.fixture
async def simulated(tmp_path: Path, prints_dir: Path) -> AsyncIterator[
        tuple[SimulatedFingerprintSensor, RecordingDriverContext]]:
    os.environ.pop("FP_VIRTUAL_DEVICE", None)
    context = RecordingDriverContext(tmp_path, simulated=True)
    backend = SimulatedFingerprintBackend(context, {"prints_dir": str(prints_dir)})
    await backend.start()
    assert len(backend.sensors) == 1
    sensor = backend.sensors[0]
    assert isinstance(sensor, SimulatedFingerprintSensor)
    await sensor.open()
    yield sensor, context
    await backend.stop()
    os.environ.pop("FP_VIRTUAL_IMAGE", None)


async def test_simulated_sensor_enrols_and_matches_with_libfprint(
        simulated: tuple[SimulatedFingerprintSensor, RecordingDriverContext]) -> None:
    sensor, _context = simulated
    assert sensor.descriptor.backend == "sim-fingerprint"
    progress: list[EnrollProgress] = []
    template = await sensor.enroll(progress.append, timeout=60)
    assert len(progress) == sensor.fingerprint_capabilities().enroll_stages
    assert (await sensor.verify(template, timeout=30)).matched
    sensor.match_print = "tented_arch"
    assert not (await sensor.verify(template, timeout=30)).matched
    assert (await sensor.identify([template], timeout=30)).index == -1
    sensor.match_print = "whorl"
    assert (await sensor.identify([template], timeout=30)).index == 0


async def test_no_template_image_or_canary_reaches_a_log(
        simulated: tuple[SimulatedFingerprintSensor, RecordingDriverContext],
        caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]) -> None:
    sensor, context = simulated
    caplog.set_level(logging.DEBUG)
    template = await sensor.enroll(lambda _p: None, timeout=60)
    image = await sensor.capture(timeout=30)
    assert (await sensor.verify(template, timeout=30)).matched
    with pytest.raises(DataFormatError) as caught:
        await sensor.verify(FingerprintTemplate(TemplateFormat.LIBFPRINT, CANARY), timeout=5)
    out, err = capfd.readouterr()
    logged = caplog.text + out + err + str(caught.value) + repr(template) + repr(image)
    samples = [CANARY.decode(), template.data[40:72].hex(), base64.b64encode(template.data[40:88]).decode(),
               image.pixels[1000:1032].hex()]
    for sample in samples:
        assert sample not in logged
    for event in context.events:
        assert CANARY not in event.payload
        assert all(CANARY.decode() not in value for value in event.attributes.values())
