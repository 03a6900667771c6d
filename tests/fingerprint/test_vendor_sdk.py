"""The vendor-SDK seam, proven with a small C library built here with gcc."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from agent.domain.device import DeviceState
from agent.domain.fingerprint import EnrollProgress, FingerprintTemplate, TemplateFormat
from agent.drivers.fingerprint.vendor_sdk import VendorSdkBackend, VendorSdkSensor, check_iso_record
from agent.errors import (
    ConfigError,
    DataFormatError,
    DeviceGoneError,
    OperationTimeoutError,
    TransientDeviceError,
)
from tests.support.driver_context import RecordingDriverContext

HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="session")
def vendor_library(tmp_path_factory: pytest.TempPathFactory) -> Path:
    gcc = shutil.which("gcc")
    assert gcc, "gcc missing (scripts/apt/fingerprint.txt)"
    target = tmp_path_factory.mktemp("vendor") / "libfpvendor.so"
    subprocess.run([gcc, "-shared", "-fPIC", "-O2", "-Wall", "-Werror", "-o", str(target),
                    str(HERE / "vendor_fake.c")], check=True)
    return target


@pytest.fixture
async def queue_and_sensor(vendor_library: Path, tmp_path: Path
                           ) -> AsyncIterator[tuple[Path, VendorSdkSensor]]:
    queue = tmp_path / "presses"
    queue.write_text("")
    context = RecordingDriverContext(tmp_path)
    backend = VendorSdkBackend(context, {"library": str(vendor_library), "config": str(queue),
                                         "enroll_stages": 3, "poll_interval": 0.01})
    await backend.start()
    sensor = backend.sensor
    assert sensor is not None
    await sensor.open()
    yield queue, sensor
    await backend.stop()


def press(queue: Path, *lines: str) -> None:
    queue.write_text("".join(line + "\n" for line in lines))


async def test_enrol_verify_identify_through_the_c_abi(
        queue_and_sensor: tuple[Path, VendorSdkSensor]) -> None:
    queue, sensor = queue_and_sensor
    assert sensor.fingerprint_capabilities().template_formats == (TemplateFormat.ISO19794_2,)
    progress: list[EnrollProgress] = []
    press(queue, "finger:whorl", "retry:3", "finger:whorl", "finger:arch", "finger:whorl")
    template = await sensor.enroll(progress.append, timeout=10)
    assert check_iso_record(template.data) == template.data
    assert [(p.stage, p.retry_reason) for p in progress] == [
        (1, ""), (1, "CENTER_FINGER"), (2, ""), (2, "POOR_QUALITY"), (3, "")]

    press(queue, "finger:whorl")
    result = await sensor.verify(template, timeout=10)
    assert (result.matched, result.score) == (True, 95)
    press(queue, "finger:tented_arch")
    assert not (await sensor.verify(template, timeout=10)).matched

    press(queue, *["finger:loop"] * 3)
    other = await sensor.enroll(lambda _p: None, timeout=10)
    press(queue, "finger:whorl")
    assert (await sensor.identify([other, template], timeout=10)).index == 1

    press(queue, "finger:loop")
    image = await sensor.capture(timeout=10)
    assert (image.width, image.height, image.quality) == (64, 64, 80)


async def test_faults_through_the_seam(queue_and_sensor: tuple[Path, VendorSdkSensor]) -> None:
    queue, sensor = queue_and_sensor
    with pytest.raises(DataFormatError):
        await sensor.verify(FingerprintTemplate(TemplateFormat.ISO19794_2, b"FMR\0 20\0garbage-garbage"), 5)
    with pytest.raises(DataFormatError):
        await sensor.verify(FingerprintTemplate(TemplateFormat.LIBFPRINT, b"x" * 40), 5)
    with pytest.raises(OperationTimeoutError):
        await sensor.capture(timeout=0.1)
    press(queue, "retry:2")
    with pytest.raises(TransientDeviceError) as caught:
        await sensor.capture(timeout=5)
    assert caught.value.reason == "TOO_SHORT"
    press(queue, "gone")
    with pytest.raises(DeviceGoneError):
        await sensor.capture(timeout=5)
    assert sensor.health().state is DeviceState.GONE


def test_library_without_the_abi_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        VendorSdkBackend(RecordingDriverContext(tmp_path), {})
    from agent.drivers.fingerprint.vendor_sdk import VendorLibrary
    with pytest.raises(ConfigError):
        VendorLibrary(str(tmp_path / "missing.so"))
    with pytest.raises(ConfigError):
        VendorLibrary("libc.so.6")  # loads, but has no fpv_* entry points
