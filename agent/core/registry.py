"""The device registry: stable ids, the per-device state machine, debounce.

States: ``present`` (found, opening) -> ``ready`` / ``error`` (driver's health)
-> ``busy`` while an operation runs -> ``gone`` when lost for longer than the
debounce window. A device found again keeps its id and history.

An ID-card reader's card presence is part of its listed state: the reader calls
``health_changed`` when a card comes or goes, and a request that names no reader goes to
the one reader holding a card (:meth:`DeviceRegistry.resolve`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from agent.core.events import EventBus
from agent.core.ids import KnownDeviceStore, device_id_for
from agent.domain.device import (
    Capabilities,
    DeviceDescriptor,
    DeviceFamily,
    DeviceHealth,
    DeviceInfo,
    DeviceState,
)
from agent.domain.events import Event, EventKind
from agent.drivers.base import Device, IdCardReader
from agent.errors import DeviceStateError, DeviceUnavailableError, InvalidRequestError, NotFoundError

log = logging.getLogger(__name__)

_EMPTY_HEALTH = DeviceHealth(state=DeviceState.PRESENT)

#: Feature of an ID-card reader slot that holds a secure access module, not a citizen's card:
#: a read that names no reader never goes there.
SAM_SLOT = "sam_slot"


@dataclass(eq=False)
class _Entry:
    id: str
    descriptor: DeviceDescriptor
    device: Device | None
    state: DeviceState = DeviceState.PRESENT
    state_since: float = field(default_factory=time.time)
    health: DeviceHealth = _EMPTY_HEALTH
    capabilities: Capabilities = field(default_factory=Capabilities)
    open_error: str = ""
    busy: int = 0
    lease_holder: str = ""
    removal: asyncio.TimerHandle | None = None
    opening: asyncio.Task[None] | None = None
    card_listed: bool = False  # the card presence last published in a state event

    def card_present(self) -> bool:
        """Read from the reader itself (its own state, no I/O), so a card event carries it."""
        device = self.device
        if not isinstance(device, IdCardReader) or self.state is DeviceState.GONE:
            return False
        try:
            return device.card_present()
        except Exception:
            return False

    def info(self) -> DeviceInfo:
        d = self.descriptor
        return DeviceInfo(id=self.id, family=d.family, backend=d.backend, name=d.name, vendor=d.vendor,
                          model=d.model, serial=d.serial, connection=d.connection, state=self.state,
                          health=self.health, capabilities=self.capabilities,
                          lease_holder=self.lease_holder, simulated=d.connection == "simulated",
                          card_present=self.card_present())


class DeviceRegistry:
    """Owns every device object the backends hand over."""

    def __init__(self, bus: EventBus, known: KnownDeviceStore, debounce_seconds: float = 2.0) -> None:
        self._bus = bus
        self._known = known
        self._debounce = debounce_seconds
        self._entries: dict[str, _Entry] = {}
        self._state_listeners: list[Callable[[DeviceInfo], None]] = []
        self._tasks: set[asyncio.Task[None]] = set()
        for k in known.all():
            desc = DeviceDescriptor(family=DeviceFamily(k.family), backend=k.backend, stable_key="",
                                    name=k.name, vendor=k.vendor, model=k.model, connection=k.connection)
            self._entries[k.id] = _Entry(k.id, desc, None, state=DeviceState.GONE)

    # -- reading -------------------------------------------------------------------------------

    def list(self, families: Iterable[DeviceFamily] = (), include_gone: bool = False) -> list[DeviceInfo]:
        wanted = set(families)
        infos = [e.info() for e in self._entries.values()
                 if (include_gone or e.state is not DeviceState.GONE)
                 and (not wanted or e.descriptor.family in wanted)]
        return sorted(infos, key=lambda i: (list(DeviceFamily).index(i.family), i.name, i.id))

    def info(self, device_id: str) -> DeviceInfo:
        return self._entry(device_id).info()

    def device(self, device_id: str, family: DeviceFamily) -> Device:
        """The live device object for an operation, or a precise error."""
        entry = self._entry(device_id)
        if entry.descriptor.family is not family:
            raise InvalidRequestError(
                f"device {device_id} is a {entry.descriptor.family.value} device, not {family.value}",
                device_id=device_id)
        if entry.device is None or entry.state is DeviceState.GONE:
            raise DeviceUnavailableError(f"device {device_id} is not connected", device_id=device_id)
        if entry.removal is not None:
            raise DeviceUnavailableError(f"device {device_id} is not responding", device_id=device_id)
        if entry.state is DeviceState.PRESENT:
            raise DeviceUnavailableError(f"device {device_id} is still starting", device_id=device_id)
        return entry.device

    def resolve(self, device_id: str, family: DeviceFamily) -> str:
        """``device_id`` itself, or, when it is empty, the device of ``family`` the request means.

        That is the only usable device of the family (or the only ready one). For ID-card
        readers it is the one reader holding a card, so a dual-interface reader (contact,
        contactless and SAM slots) needs no device id; several cards, or none on several
        readers, is a :class:`~agent.errors.DeviceStateError` (``SEVERAL_CARDS``, ``NO_CARD``)
        naming the readers.
        """
        if device_id:
            self._entry(device_id)
            return device_id
        usable = [e for e in self._entries.values()
                  if e.descriptor.family is family and e.state not in (DeviceState.GONE,)]
        if not usable:
            raise NotFoundError(f"no {family.value} device is connected")
        if family is DeviceFamily.IDCARD:
            readers = [e for e in usable if SAM_SLOT not in e.capabilities.features] or usable
            holding = [e for e in readers if e.card_present()]
            if len(holding) == 1:
                return holding[0].id
            if len(holding) > 1:
                raise DeviceStateError(
                    f"a card is on each of {len(holding)} readers: {_named(holding)}; "
                    "leave one card, or name the reader with device_id", reason="SEVERAL_CARDS")
            usable = readers
        if len(usable) > 1:
            ready = [e for e in usable if e.state in (DeviceState.READY, DeviceState.BUSY)]
            if len(ready) == 1:
                return ready[0].id
            if family is DeviceFamily.IDCARD:
                raise DeviceStateError(
                    f"no card on any of the {len(usable)} readers: {_named(usable)}; "
                    "put the card on one, or name the reader with device_id", reason="NO_CARD")
            raise InvalidRequestError(
                f"{len(usable)} {family.value} devices are connected: name one with device_id")
        return usable[0].id

    def on_state_change(self, listener: Callable[[DeviceInfo], None]) -> None:
        self._state_listeners.append(listener)

    def device_id_of(self, device: Device) -> str:
        d = device.descriptor
        return device_id_for(d.family, d.backend, d.stable_key)

    # -- driver callbacks ----------------------------------------------------------------------

    def found(self, device: Device) -> None:
        desc = device.descriptor
        dev_id = device_id_for(desc.family, desc.backend, desc.stable_key)
        entry = self._entries.get(dev_id)
        if entry is not None and entry.removal is not None:
            entry.removal.cancel()
            entry.removal = None
        if entry is not None and entry.device is device:
            return
        previous = entry.device if entry is not None else None
        was_gone = entry is None or entry.state is DeviceState.GONE
        if entry is None:
            entry = _Entry(dev_id, desc, device)
            self._entries[dev_id] = entry
        else:
            entry.descriptor = desc
            entry.device = device
        self._known.remember(dev_id, desc)
        if was_gone:
            entry.state = DeviceState.PRESENT
            entry.state_since = time.time()
            entry.health = _EMPTY_HEALTH
            log.info("device %s (%s, %s) found", dev_id, desc.family.value, desc.backend)
            self._publish(EventKind.DEVICE_ADDED, entry)
        if previous is not None and previous is not device:
            self._spawn(self._close_quietly(previous))
        entry.opening = self._spawn(self._open(entry, device))

    def lost(self, family: DeviceFamily, backend: str, stable_key: str, reason: str = "") -> None:
        dev_id = device_id_for(family, backend, stable_key)
        entry = self._entries.get(dev_id)
        if entry is None or entry.state is DeviceState.GONE or entry.removal is not None:
            return
        loop = asyncio.get_running_loop()
        entry.removal = loop.call_later(self._debounce, self._remove, entry, reason)

    def health_changed(self, device: Device) -> None:
        entry = self._entries.get(self.device_id_of(device))
        if entry is None or entry.device is not device:
            return
        self._refresh(entry)

    # -- operations ----------------------------------------------------------------------------

    def set_busy(self, device_id: str, busy: bool) -> None:
        entry = self._entry(device_id)
        entry.busy = max(0, entry.busy + (1 if busy else -1))
        self._refresh(entry)

    def set_lease_holder(self, device_id: str, holder: str) -> None:
        entry = self._entries.get(device_id)
        if entry is None or entry.lease_holder == holder:
            return
        entry.lease_holder = holder
        self._publish(EventKind.LEASE_CHANGED, entry, {"holder": holder})

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for entry in self._entries.values():
            if entry.removal is not None:
                entry.removal.cancel()
                entry.removal = None
            if entry.device is not None:
                await self._close_quietly(entry.device)
                entry.device = None
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    # -- internals -----------------------------------------------------------------------------

    def _entry(self, device_id: str) -> _Entry:
        if not device_id or len(device_id) > 128:
            raise InvalidRequestError("device_id is empty or too long")
        try:
            return self._entries[device_id]
        except KeyError:
            raise NotFoundError(f"no device with id {device_id!r}", device_id=device_id) from None

    def _spawn(self, coro: object) -> asyncio.Task[None]:
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(coro)  # type: ignore[arg-type]
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _open(self, entry: _Entry, device: Device) -> None:
        try:
            await device.open()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a driver failing to open must not take the agent down
            if entry.device is not device:
                return
            entry.open_error = getattr(exc, "reason", type(exc).__name__)
            entry.opening = None
            log.warning("device %s failed to open: %s", entry.id, exc)
            self._refresh(entry)
            return
        if entry.device is not device:
            return
        entry.open_error = ""
        entry.opening = None
        entry.capabilities = device.capabilities()
        self._refresh(entry)

    def _refresh(self, entry: _Entry) -> None:
        device = entry.device
        if device is None:
            return
        if entry.opening is not None:
            return  # still opening: stay PRESENT
        try:
            health = device.health()
        except Exception as exc:
            health = DeviceHealth(state=DeviceState.ERROR, last_error=type(exc).__name__)
        if entry.open_error:
            health = DeviceHealth(state=DeviceState.ERROR, conditions=health.conditions,
                                  supplies=health.supplies, counters=health.counters,
                                  last_error=entry.open_error)
        state = health.state
        if entry.busy and state in (DeviceState.READY, DeviceState.BUSY):
            state = DeviceState.BUSY
        if state is DeviceState.GONE:
            state = DeviceState.ERROR
        card = entry.card_present()
        changed = state is not entry.state or health != entry.health or card is not entry.card_listed
        if not changed:
            return
        entry.card_listed = card
        if state is not entry.state:
            if state is DeviceState.ERROR or entry.state is DeviceState.ERROR:
                log.info("device %s %s -> %s", entry.id, entry.state.value, state.value)
            entry.state_since = time.time()
        entry.state = state
        entry.health = health
        self._publish(EventKind.DEVICE_STATE_CHANGED, entry)

    def _remove(self, entry: _Entry, reason: str) -> None:
        entry.removal = None
        device, entry.device = entry.device, None
        entry.state = DeviceState.GONE
        entry.state_since = time.time()
        log.info("device %s gone%s", entry.id, f" ({reason})" if reason else "")
        self._publish(EventKind.DEVICE_REMOVED, entry, {"reason": reason} if reason else None)
        if device is not None:
            self._spawn(self._close_quietly(device))

    async def _close_quietly(self, device: Device) -> None:
        try:
            await device.close()
        except Exception as exc:
            log.warning("closing %s failed: %s", device.descriptor.backend, exc)

    def _publish(self, kind: EventKind, entry: _Entry, attributes: dict[str, str] | None = None) -> None:
        info = entry.info()
        self._bus.publish(Event(kind=kind, device_id=entry.id, timestamp=time.time(), device=info,
                                attributes=attributes or {}))
        for listener in self._state_listeners:
            listener(info)


def _named(entries: Iterable[_Entry]) -> str:
    """``"ACS ACR1252 00 00" (idcard-3f2a...), ...``: names and ids, in a stable order."""
    ordered = sorted(entries, key=lambda e: (e.descriptor.name, e.id))
    return ", ".join(f'"{e.descriptor.name}" ({e.id})' for e in ordered)
