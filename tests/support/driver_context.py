"""The shared :class:`~tests.support.context.RecordingContext`, plus what the fingerprint and
barcode tests need on top: devices in the order found, and awaiting the next matching event."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from agent.domain.events import EventKind
from agent.drivers.base import Device
from tests.support.context import Emitted, RecordingContext

EmittedEvent = Emitted


@dataclass
class RecordingDriverContext(RecordingContext):
    found: list[Device] = field(default_factory=list)
    _queue: asyncio.Queue[Emitted] | None = None

    def __init__(self, directory: Path, simulated: bool = False) -> None:
        super().__init__(state_path=directory, simulated=simulated)
        self.found = []
        self._queue = None

    def device_found(self, device: Device) -> None:
        self.found.append(device)
        super().device_found(device)

    def emit(self, device: Device, kind: EventKind, attributes: Mapping[str, str] | None = None,
             payload: bytes = b"") -> None:
        super().emit(device, kind, attributes, payload)
        self.queue().put_nowait(self.events[-1])

    def queue(self) -> asyncio.Queue[Emitted]:
        if self._queue is None:
            self._queue = asyncio.Queue()
        return self._queue

    async def next_event(self, predicate: Callable[[Emitted], bool], timeout: float = 30.0) -> Emitted:
        """Wait for the next emitted event matching ``predicate`` (earlier ones are dropped)."""
        async with asyncio.timeout(timeout):
            while True:
                event = await self.queue().get()
                if predicate(event):
                    return event
