"""The core's device registry seen as a :class:`HealthSource` for the reporter.

Only device lifecycle and health events wake the reporter; card, barcode, job and
finger events (which may carry personal data) are never looked at.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from agent.core.events import EventBus
from agent.core.registry import DeviceRegistry
from agent.domain.device import DeviceInfo
from agent.domain.events import Event, EventKind

_DEVICE_EVENTS = frozenset({EventKind.DEVICE_ADDED, EventKind.DEVICE_REMOVED, EventKind.DEVICE_STATE_CHANGED})


class RegistryHealthSource:
    def __init__(self, registry: DeviceRegistry, bus: EventBus) -> None:
        self._registry = registry
        self._bus = bus
        self._callbacks: list[Callable[[], None]] = []
        bus.add_listener(self._on_event)

    def devices(self) -> Sequence[DeviceInfo]:
        # gone devices stay listed (state "gone") so the gateway sees a dead device, not a vanished one
        return self._registry.list(include_gone=True)

    def add_change_listener(self, callback: Callable[[], None]) -> Callable[[], None]:
        self._callbacks.append(callback)

        def remove() -> None:
            if callback in self._callbacks:
                self._callbacks.remove(callback)

        return remove

    def _on_event(self, event: Event) -> None:
        if event.kind in _DEVICE_EVENTS:
            for callback in list(self._callbacks):
                callback()
