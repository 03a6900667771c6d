"""A DriverContext for driver tests that records what a backend reports."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from agent.domain.device import DeviceFamily
from agent.domain.events import EventKind
from agent.drivers.base import Device, DriverContext
from agent.errors import NotSupportedError

if TYPE_CHECKING:
    from zeroconf.asyncio import AsyncZeroconf

T = TypeVar("T")


@dataclass
class EmittedEvent:
    device: Device
    kind: EventKind
    attributes: Mapping[str, str]
    payload: bytes


@dataclass
class RecordingDriverContext(DriverContext):
    """Records devices found/lost, health changes and emitted events."""

    directory: Path
    simulated: bool = False
    found: list[Device] = field(default_factory=list)
    lost: list[tuple[DeviceFamily, str, str, str]] = field(default_factory=list)
    health_changes: list[Device] = field(default_factory=list)
    events: list[EmittedEvent] = field(default_factory=list)
    _queue: asyncio.Queue[EmittedEvent] | None = None

    @property
    def state_dir(self) -> Path:
        return self.directory

    @property
    def simulate(self) -> bool:
        return self.simulated

    @property
    def logger(self) -> logging.Logger:
        return logging.getLogger("agent.drivers.test")

    def device_found(self, device: Device) -> None:
        self.found.append(device)

    def device_lost(self, family: DeviceFamily, backend: str, stable_key: str, reason: str = "") -> None:
        self.lost.append((family, backend, stable_key, reason))

    def health_changed(self, device: Device) -> None:
        self.health_changes.append(device)

    def emit(self, device: Device, kind: EventKind, attributes: Mapping[str, str] | None = None,
             payload: bytes = b"") -> None:
        event = EmittedEvent(device, kind, dict(attributes or {}), payload)
        self.events.append(event)
        self.queue().put_nowait(event)

    def queue(self) -> asyncio.Queue[EmittedEvent]:
        if self._queue is None:
            self._queue = asyncio.Queue()
        return self._queue

    async def next_event(self, predicate: Callable[[EmittedEvent], bool], timeout: float = 30.0
                         ) -> EmittedEvent:
        """Wait for the next emitted event matching ``predicate`` (earlier ones are dropped)."""
        async with asyncio.timeout(timeout):
            while True:
                event = await self.queue().get()
                if predicate(event):
                    return event

    async def run_blocking(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(None, fn, *args)

    async def zeroconf(self) -> AsyncZeroconf:
        raise NotSupportedError("no zeroconf in driver tests")
