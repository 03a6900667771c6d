"""Leases: one client drives a device at a time, with an owner and a timeout.

A client may claim a device explicitly (``ClaimDevice``) and pass the lease id
with each operation, or run a single operation on a free device, which then holds
an implicit lease for the duration of that operation. Expired leases are released
automatically; a client whose connection ends loses its implicit operations.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from agent.core.registry import DeviceRegistry
from agent.errors import DeviceBusyError, DeviceLeasedError, ForbiddenError, InvalidRequestError


@dataclass(frozen=True, slots=True)
class Lease:
    lease_id: str
    device_id: str
    client_id: str
    expires_at: float


class LeaseManager:
    def __init__(self, registry: DeviceRegistry, default_ttl: float = 60.0, max_ttl: float = 3600.0,
                 clock: Callable[[], float] = time.time) -> None:
        self._registry = registry
        self._default_ttl = default_ttl
        self._max_ttl = max_ttl
        self._clock = clock
        self._by_device: dict[str, Lease] = {}
        self._by_id: dict[str, Lease] = {}
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._claims: dict[tuple[str, str], str] = {}  # (client, request_id) -> lease id
        self._running: set[str] = set()  # devices with an operation in progress

    @property
    def held(self) -> int:
        return len(self._by_id)

    def holder(self, device_id: str) -> str:
        lease = self._by_device.get(device_id)
        return lease.client_id if lease is not None else ""

    def _ttl(self, ttl: float) -> float:
        if ttl < 0 or ttl > self._max_ttl:
            raise InvalidRequestError(f"ttl_seconds must be between 1 and {int(self._max_ttl)}")
        return ttl or self._default_ttl

    def claim(self, device_id: str, client_id: str, ttl: float = 0, request_id: str = "") -> Lease:
        self._registry.info(device_id)  # NOT_FOUND for unknown ids
        ttl = self._ttl(ttl)
        if request_id:
            previous = self._by_id.get(self._claims.get((client_id, request_id), ""))
            if previous is not None:
                return previous
        current = self._by_device.get(device_id)
        if current is not None and current.client_id != client_id:
            raise DeviceLeasedError(f"device {device_id} is leased by client {current.client_id!r}",
                                    holder=current.client_id, device_id=device_id)
        if current is not None:
            lease = self._store(Lease(current.lease_id, device_id, client_id, self._clock() + ttl))
        else:
            lease = self._store(Lease(secrets.token_urlsafe(16), device_id, client_id, self._clock() + ttl))
        if request_id:
            self._claims[(client_id, request_id)] = lease.lease_id
        return lease

    def renew(self, lease_id: str, client_id: str, ttl: float = 0) -> Lease:
        lease = self._own(lease_id, client_id)
        return self._store(Lease(lease.lease_id, lease.device_id, client_id, self._clock() + self._ttl(ttl)))

    def release(self, lease_id: str, client_id: str) -> bool:
        lease = self._by_id.get(lease_id)
        if lease is None:
            return False
        if lease.client_id != client_id:
            raise ForbiddenError("that lease belongs to another client")
        self._drop(lease)
        return True

    def release_all(self, client_id: str) -> int:
        mine = [lease for lease in self._by_id.values() if lease.client_id == client_id]
        for lease in mine:
            self._drop(lease)
        return len(mine)

    def check(self, device_id: str, client_id: str, lease_id: str = "") -> None:
        """Raise unless ``client_id`` may use the device now (its lease, or nobody's)."""
        current = self._by_device.get(device_id)
        if lease_id:
            lease = self._own(lease_id, client_id)
            if lease.device_id != device_id:
                raise InvalidRequestError("lease_id is for another device")
            return
        if current is not None and current.client_id != client_id:
            raise DeviceLeasedError(f"device {device_id} is leased by client {current.client_id!r}",
                                    holder=current.client_id, device_id=device_id)

    @contextlib.asynccontextmanager
    async def operation(self, device_id: str, client_id: str, lease_id: str = "") -> AsyncIterator[None]:
        """Run one exclusive operation on the device (card read, fingerprint capture, scan)."""
        self.check(device_id, client_id, lease_id)
        if device_id in self._running:
            raise DeviceBusyError(f"device {device_id} is running another operation", device_id=device_id)
        self._running.add(device_id)
        self._registry.set_busy(device_id, True)
        try:
            yield
        finally:
            self._running.discard(device_id)
            self._registry.set_busy(device_id, False)

    # -- internals -----------------------------------------------------------------------------

    def _own(self, lease_id: str, client_id: str) -> Lease:
        lease = self._by_id.get(lease_id)
        if lease is None or lease.expires_at <= self._clock():
            raise InvalidRequestError("lease is unknown or expired: claim the device again")
        if lease.client_id != client_id:
            raise ForbiddenError("that lease belongs to another client")
        return lease

    def _store(self, lease: Lease) -> Lease:
        self._by_id[lease.lease_id] = lease
        self._by_device[lease.device_id] = lease
        timer = self._timers.pop(lease.lease_id, None)
        if timer is not None:
            timer.cancel()
        delay = max(0.0, lease.expires_at - self._clock())
        self._timers[lease.lease_id] = asyncio.get_running_loop().call_later(delay, self._expire, lease.lease_id)
        self._registry.set_lease_holder(lease.device_id, lease.client_id)
        return lease

    def _expire(self, lease_id: str) -> None:
        lease = self._by_id.get(lease_id)
        if lease is None:
            return
        if lease.expires_at > self._clock():  # renewed meanwhile
            return
        self._drop(lease)

    def _drop(self, lease: Lease) -> None:
        self._by_id.pop(lease.lease_id, None)
        if self._by_device.get(lease.device_id) is lease or (
                self._by_device.get(lease.device_id, lease).lease_id == lease.lease_id):
            self._by_device.pop(lease.device_id, None)
        timer = self._timers.pop(lease.lease_id, None)
        if timer is not None:
            timer.cancel()
        self._claims = {k: v for k, v in self._claims.items() if v != lease.lease_id}
        self._registry.set_lease_holder(lease.device_id, "")
