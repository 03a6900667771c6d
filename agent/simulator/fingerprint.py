"""Simulated fingerprint sensor: a synthetic ridge image per press.

Replaced by libfprint's virtual_image driven through the real libfprint backend (issue 5).
"""

from __future__ import annotations

import asyncio
import hashlib
import math
from collections.abc import Callable, Sequence

from agent.domain.device import DeviceDescriptor, DeviceFamily
from agent.domain.fingerprint import (
    EnrollProgress,
    FingerprintCapabilities,
    FingerprintImage,
    FingerprintTemplate,
    IdentifyResult,
    MatchResult,
    TemplateFormat,
)
from agent.drivers.base import Device, FingerprintSensor
from agent.errors import DataFormatError
from agent.simulator.base import SimulatedDeviceMixin, SingleDeviceBackend

_W, _H = 160, 200


def _ridges(finger: int) -> bytes:
    return bytes(int(127 + 120 * math.sin((x * 0.3 + y * 0.2) + finger)) for y in range(_H) for x in range(_W))


class SimulatedFingerprintSensor(SimulatedDeviceMixin, FingerprintSensor):
    features = frozenset({"capture", "identify"})
    finger = 1  # which synthetic finger the next press shows

    def fingerprint_capabilities(self) -> FingerprintCapabilities:
        return FingerprintCapabilities((TemplateFormat.VENDOR,), enroll_stages=3, can_capture_image=True,
                                       can_identify=True, image_width=_W, image_height=_H)

    async def capture(self, timeout: float) -> FingerprintImage:
        await asyncio.sleep(0.01)
        return FingerprintImage(_W, _H, _ridges(self.finger), quality=80)

    def _template(self) -> FingerprintTemplate:
        return FingerprintTemplate(TemplateFormat.VENDOR, b"SIMF" + hashlib.sha256(_ridges(self.finger)).digest())

    async def enroll(self, on_progress: Callable[[EnrollProgress], None], timeout: float) -> FingerprintTemplate:
        for stage in range(1, 4):
            await asyncio.sleep(0.01)
            on_progress(EnrollProgress(stage, 3))
        return self._template()

    def _check(self, template: FingerprintTemplate) -> None:
        if template.format is not TemplateFormat.VENDOR or not template.data.startswith(b"SIMF") \
                or len(template.data) != 36:
            raise DataFormatError("template is not a simulator template")

    async def verify(self, template: FingerprintTemplate, timeout: float) -> MatchResult:
        self._check(template)
        await asyncio.sleep(0.01)
        return MatchResult(template.data == self._template().data)

    async def identify(self, templates: Sequence[FingerprintTemplate], timeout: float) -> IdentifyResult:
        for t in templates:
            self._check(t)
        live = self._template().data
        return IdentifyResult(next((i for i, t in enumerate(templates) if t.data == live), -1))


class SimulatedFingerprintBackend(SingleDeviceBackend):
    name = "sim-fingerprint"
    family = DeviceFamily.FINGERPRINT
    device_name = "Simulated fingerprint sensor"

    def make_device(self, descriptor: DeviceDescriptor) -> Device:
        return SimulatedFingerprintSensor(descriptor, self._ctx)
