"""A DriverContext for scanner tests: records what the backend reports, runs blocking calls in threads."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from zeroconf import IPVersion
from zeroconf.asyncio import AsyncZeroconf

from agent.domain.device import DeviceFamily
from agent.domain.events import EventKind
from agent.drivers.base import Device, DriverContext

T = TypeVar("T")


class ScannerTestContext(DriverContext):
    def __init__(self, state_dir: Path, simulate: bool = False) -> None:
        self._state_dir = state_dir
        self._simulate = simulate
        self._logger = logging.getLogger("agent.drivers.scanner.test")
        self._zeroconf: AsyncZeroconf | None = None
        self.found: dict[str, Device] = {}
        self.lost: list[str] = []
        self.health_changes = 0
        self.changed = asyncio.Event()

    @property
    def state_dir(self) -> Path:
        return self._state_dir

    @property
    def simulate(self) -> bool:
        return self._simulate

    @property
    def logger(self) -> logging.Logger:
        return self._logger

    def device_found(self, device: Device) -> None:
        self.found[device.descriptor.stable_key] = device
        self.changed.set()

    def device_lost(self, family: DeviceFamily, backend: str, stable_key: str, reason: str = "") -> None:
        self.found.pop(stable_key, None)
        self.lost.append(stable_key)
        self.changed.set()

    def health_changed(self, device: Device) -> None:
        self.health_changes += 1

    def emit(
        self,
        device: Device,
        kind: EventKind,
        attributes: Mapping[str, str] | None = None,
        payload: bytes = b"",
    ) -> None:
        raise AssertionError("scanners emit no device events")

    async def run_blocking(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.to_thread(fn, *args)

    async def zeroconf(self) -> AsyncZeroconf:
        if self._zeroconf is None:
            # loopback only: never announce or browse on the machine's real interfaces
            self._zeroconf = AsyncZeroconf(interfaces=["127.0.0.1"], ip_version=IPVersion.V4Only)
        return self._zeroconf

    async def aclose(self) -> None:
        if self._zeroconf is not None:
            await self._zeroconf.async_close()
            self._zeroconf = None

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 15.0) -> None:
        async with asyncio.timeout(timeout):
            while not predicate():
                self.changed.clear()
                await self.changed.wait()
