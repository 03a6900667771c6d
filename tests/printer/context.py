"""A DriverContext for printer tests: records what drivers report, runs blocking calls in
threads, and offers a loopback-only zeroconf."""

from __future__ import annotations

import asyncio
import contextlib
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


class PrinterTestContext(DriverContext):
    def __init__(self, state_dir: Path, *, simulate: bool = False) -> None:
        self._state_dir = state_dir
        self._simulate = simulate
        self._logger = logging.getLogger("agent.test.printer")
        self.found: list[Device] = []
        self.lost: list[tuple[str, str]] = []
        self.health_changes: list[Device] = []
        self.events: list[tuple[EventKind, Mapping[str, str]]] = []
        self._zeroconf: AsyncZeroconf | None = None
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
        self.found.append(device)
        self.changed.set()

    def device_lost(self, family: DeviceFamily, backend: str, stable_key: str, reason: str = "") -> None:
        self.lost.append((backend, stable_key))
        self.changed.set()

    def health_changed(self, device: Device) -> None:
        self.health_changes.append(device)
        self.changed.set()

    def emit(self, device: Device, kind: EventKind, attributes: Mapping[str, str] | None = None,
             payload: bytes = b"") -> None:
        self.events.append((kind, dict(attributes or {})))
        self.changed.set()

    async def run_blocking(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.to_thread(fn, *args)

    async def zeroconf(self) -> AsyncZeroconf:
        if self._zeroconf is None:
            # loopback only: never send on the machine's real interface (TESTBED.md)
            self._zeroconf = AsyncZeroconf(interfaces=["127.0.0.1"], ip_version=IPVersion.V4Only)
        return self._zeroconf

    async def aclose(self) -> None:
        if self._zeroconf is not None:
            await self._zeroconf.async_close()
            self._zeroconf = None

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 10.0) -> None:
        """Wait until ``predicate()`` holds, re-checking whenever the driver reports something."""
        async with asyncio.timeout(timeout):
            while not predicate():
                self.changed.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.changed.wait(), 0.2)
