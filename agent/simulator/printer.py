"""The ``--simulate`` printer: an emulated IPP Everywhere printer in-process on 127.0.0.1,
driven by the real IPP backend (:mod:`agent.drivers.printer.ipp_backend`).

Backend options (``[drivers.sim-printer]``): :class:`agent.drivers.options.SimPrinterOptions`.
"""

from __future__ import annotations

from typing import ClassVar

from agent.domain.device import DeviceDescriptor, DeviceFamily
from agent.drivers.base import BackendOptions, DeviceBackend, DriverContext
from agent.drivers.options import SimPrinterOptions, typed_options
from agent.drivers.printer.ipp_backend import DEFAULT_POLL_INTERVAL, IppPrinter
from agent.simulator.ipp_printer import EmulatedIppPrinter


class SimulatedPrinterBackend(DeviceBackend):
    name: ClassVar[str] = "sim-printer"
    family: ClassVar[DeviceFamily] = DeviceFamily.PRINTER

    def __init__(self, ctx: DriverContext, options: BackendOptions) -> None:
        super().__init__(ctx, options)
        opts = typed_options(SimPrinterOptions, options)
        self.emulator = EmulatedIppPrinter(job_seconds=opts.job_seconds)
        self._poll_interval = opts.poll_interval or DEFAULT_POLL_INTERVAL
        self.device: IppPrinter | None = None

    async def start(self) -> None:
        await self.emulator.start()
        descriptor = DeviceDescriptor(
            family=self.family, backend=self.name, stable_key="sim-0", name=self.emulator.name,
            vendor="centre-devices", model="Emulated IPP Everywhere", serial="SIM0001",
            connection="simulated", address=self.emulator.uri)
        self.device = IppPrinter(descriptor, self._ctx, self.emulator.uri, poll_interval=self._poll_interval)
        self._ctx.device_found(self.device)

    async def stop(self) -> None:
        device, self.device = self.device, None
        if device is not None:
            await device.close()
        await self.emulator.stop()
