"""The DriverContext the core hands to each backend."""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from agent.core.events import EventBus
from agent.core.registry import DeviceRegistry
from agent.domain.device import DeviceFamily
from agent.domain.events import Event, EventKind
from agent.drivers.base import Device, DriverContext

if TYPE_CHECKING:
    from zeroconf.asyncio import AsyncZeroconf

    from agent.drivers.idcard.trust_bundle import DistributedTrust

T = TypeVar("T")


class SharedZeroconf:
    """One mDNS instance for every backend, created on first use."""

    def __init__(self, interfaces: list[str]) -> None:
        self._interfaces = interfaces
        self._instance: AsyncZeroconf | None = None
        self._lock = asyncio.Lock()

    async def get(self) -> AsyncZeroconf:
        async with self._lock:
            if self._instance is None:
                from zeroconf import InterfaceChoice, IPVersion
                from zeroconf.asyncio import AsyncZeroconf

                if self._interfaces:
                    only_v4 = all(":" not in i for i in self._interfaces)
                    self._instance = AsyncZeroconf(interfaces=self._interfaces,
                                                   ip_version=IPVersion.V4Only if only_v4 else IPVersion.All)
                else:
                    self._instance = AsyncZeroconf(interfaces=InterfaceChoice.All)
            return self._instance

    async def close(self) -> None:
        if self._instance is not None:
            await self._instance.async_close()
            self._instance = None


class CoreDriverContext(DriverContext):
    def __init__(self, backend: str, registry: DeviceRegistry, bus: EventBus, executor: ThreadPoolExecutor,
                 zeroconf: SharedZeroconf, state_dir: Path, simulate: bool,
                 trust: DistributedTrust | None = None) -> None:
        self._backend = backend
        self._trust = trust
        self._registry = registry
        self._bus = bus
        self._executor = executor
        self._zeroconf = zeroconf
        self._state_dir = state_dir
        self._simulate = simulate
        self._logger = logging.getLogger(f"agent.drivers.{backend}")

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
        self._registry.found(device)

    def device_lost(self, family: DeviceFamily, backend: str, stable_key: str, reason: str = "") -> None:
        self._registry.lost(family, backend, stable_key, reason)

    def health_changed(self, device: Device) -> None:
        self._registry.health_changed(device)

    def emit(self, device: Device, kind: EventKind, attributes: Mapping[str, str] | None = None,
             payload: bytes = b"") -> None:
        device_id = self._registry.device_id_of(device)
        info = None
        try:
            info = self._registry.info(device_id)
        except LookupError:
            info = None
        self._bus.publish(Event(kind=kind, device_id=device_id, timestamp=time.time(), device=info,
                                attributes=dict(attributes or {}), payload=payload))

    async def run_blocking(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(fn, *args))

    async def zeroconf(self) -> AsyncZeroconf:
        return await self._zeroconf.get()

    def distributed_trust(self) -> DistributedTrust | None:
        return self._trust
