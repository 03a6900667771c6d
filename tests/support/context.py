"""A DriverContext for testing a backend on its own, without the agent's core."""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from agent.domain.device import DeviceFamily
from agent.domain.events import EventKind
from agent.drivers.base import Device, DriverContext

if TYPE_CHECKING:
    from zeroconf.asyncio import AsyncZeroconf

T = TypeVar("T")


@dataclass(frozen=True)
class Emitted:
    device: Device
    kind: EventKind
    attributes: Mapping[str, str]
    payload: bytes
    time: float


@dataclass
class RecordingContext(DriverContext):
    """Records what a backend reports; devices found are kept in ``devices`` by stable key.

    ``wait_for`` lets a test await a condition on the recorded state without sleeping blindly.
    """

    state_path: Path = field(default_factory=lambda: Path("/tmp"))
    simulated: bool = False
    devices: dict[str, Device] = field(default_factory=dict)
    lost: list[tuple[DeviceFamily, str, str, str]] = field(default_factory=list)
    events: list[Emitted] = field(default_factory=list)
    health_changes: list[Device] = field(default_factory=list)
    zeroconf_interfaces: list[str] = field(default_factory=lambda: ["127.0.0.1"])
    _executor: ThreadPoolExecutor = field(default_factory=lambda: ThreadPoolExecutor(4))
    _zc: AsyncZeroconf | None = None
    _changed: asyncio.Event | None = None

    @property
    def state_dir(self) -> Path:
        return self.state_path

    @property
    def simulate(self) -> bool:
        return self.simulated

    @property
    def logger(self) -> logging.Logger:
        return logging.getLogger("tests.driver")

    def _notify(self) -> None:
        if self._changed is not None:
            self._changed.set()

    def device_found(self, device: Device) -> None:
        self.devices[device.descriptor.stable_key] = device
        self._notify()

    def device_lost(self, family: DeviceFamily, backend: str, stable_key: str, reason: str = "") -> None:
        self.devices.pop(stable_key, None)
        self.lost.append((family, backend, stable_key, reason))
        self._notify()

    def health_changed(self, device: Device) -> None:
        self.health_changes.append(device)
        self._notify()

    def emit(self, device: Device, kind: EventKind, attributes: Mapping[str, str] | None = None,
             payload: bytes = b"") -> None:
        self.events.append(Emitted(device, kind, dict(attributes or {}), payload, time.monotonic()))
        self._notify()

    async def run_blocking(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, functools.partial(fn, *args))

    async def zeroconf(self) -> AsyncZeroconf:
        if self._zc is None:
            from zeroconf import IPVersion
            from zeroconf.asyncio import AsyncZeroconf

            self._zc = AsyncZeroconf(interfaces=self.zeroconf_interfaces, ip_version=IPVersion.V4Only)
        return self._zc

    async def wait_for(self, condition: Callable[[], bool], timeout: float = 10.0) -> None:
        """Wait until ``condition()`` is true after some report; TimeoutError otherwise."""
        if self._changed is None:
            self._changed = asyncio.Event()
        async with asyncio.timeout(timeout):
            while not condition():
                self._changed.clear()
                try:
                    await asyncio.wait_for(self._changed.wait(), 0.5)
                except TimeoutError:
                    continue

    async def aclose(self) -> None:
        if self._zc is not None:
            await self._zc.async_close()
            self._zc = None
        self._executor.shutdown(wait=False, cancel_futures=True)
