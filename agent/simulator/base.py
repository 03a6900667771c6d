"""A simulated backend with one device, found at start and gone at stop."""

from __future__ import annotations

import abc
from typing import ClassVar

from agent.domain.device import DeviceDescriptor
from agent.drivers.base import Device, DeviceBackend


class SingleDeviceBackend(DeviceBackend):
    """Hands one simulated device to the core at start and takes it back at stop."""

    device_name: ClassVar[str] = "Simulated device"

    @abc.abstractmethod
    def make_device(self, descriptor: DeviceDescriptor) -> Device:
        """Build the simulated device for ``descriptor``."""

    async def start(self) -> None:
        descriptor = DeviceDescriptor(family=self.family, backend=self.name, stable_key="sim-0",
                                      name=self.device_name, vendor="centre-devices", model="simulator",
                                      serial="SIM0001", connection="simulated", address="in-process")
        self.device: Device = self.make_device(descriptor)
        self._ctx.device_found(self.device)

    async def stop(self) -> None:
        await self.device.close()
