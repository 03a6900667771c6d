"""The ``--simulate`` scanner: the eSCL emulator in-process on 127.0.0.1, driven by the real
eSCL backend, so a simulated scan runs the same client code as a network scanner.

Options (``[drivers.sim-scanner]``): ``sheets`` (pages in the emulated feeder, default 10,
reloaded after every feeder job so demos keep working).
"""

from __future__ import annotations

from typing import ClassVar

from agent.domain.device import DeviceFamily
from agent.drivers.base import BackendOptions, DeviceBackend, DriverContext
from agent.drivers.options import SimScannerOptions, typed_options
from agent.drivers.scanner.escl import EsclScanner
from agent.drivers.scanner.escl_discovery import probe_escl
from agent.simulator.escl_scanner import EmulatorState, EsclEmulator


class SimulatedScannerBackend(DeviceBackend):
    name: ClassVar[str] = "sim-scanner"
    family: ClassVar[DeviceFamily] = DeviceFamily.SCANNER

    def __init__(self, ctx: DriverContext, options: BackendOptions) -> None:
        super().__init__(ctx, options)
        sheets = typed_options(SimScannerOptions, options).sheets
        self.emulator = EsclEmulator(
            EmulatorState(
                name="Simulated eSCL scanner",
                uuid="00000000-0000-4000-8000-5ca11e500001",
                sheets=sheets,
                reload_sheets=sheets,
            )
        )
        self.device: EsclScanner | None = None

    async def start(self) -> None:
        await self.emulator.start()
        self.device = await probe_escl(
            self._ctx, self.emulator.url, backend=self.name, connection="simulated", stable_key="sim-0"
        )
        self._ctx.device_found(self.device)

    async def stop(self) -> None:
        if self.device is not None:
            await self.device.close()
            self.device = None
        await self.emulator.stop()
