"""Fixtures for the ID-card tests: a private pcscd with a vpcd reader, vpcd card processes,
and a recording driver context.

The pcscd socket path is claimed at import time, before anything in this process talks to
pcscd (libpcsclite reads ``PCSCLITE_CSOCK_NAME`` once): see ``pcsc_testbed``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest

from agent.domain.device import DeviceFamily
from agent.domain.events import EventKind
from agent.drivers.base import Device, DriverContext
from tests.idcard.pcsc_testbed import PcscdPeer, VpcdCardProcess, claim_socket_path, wait_for_card

T = TypeVar("T")

PCSCD_SOCKET = claim_socket_path()


@dataclass
class RecordedEvent:
    kind: EventKind
    device: Device
    attributes: Mapping[str, str]
    at: float = field(default_factory=time.perf_counter)


class RecordingContext(DriverContext):
    """A DriverContext that records what a backend tells the core."""

    def __init__(self, state_dir: Path, *, simulate: bool = False) -> None:
        self._state_dir = state_dir
        self._simulate = simulate
        self._logger = logging.getLogger("centre.test.driver")
        self.devices: dict[str, Device] = {}
        self.lost: list[str] = []
        self.events: list[RecordedEvent] = []
        self.health_calls = 0
        self._changed = asyncio.Event()

    @property
    def state_dir(self) -> Path:
        return self._state_dir

    @property
    def simulate(self) -> bool:
        return self._simulate

    @property
    def logger(self) -> logging.Logger:
        return self._logger

    def _poke(self) -> None:
        self._changed.set()

    def device_found(self, device: Device) -> None:
        self.devices[device.descriptor.stable_key] = device
        self._poke()

    def device_lost(self, family: DeviceFamily, backend: str, stable_key: str, reason: str = "") -> None:
        self.lost.append(stable_key)
        self.devices.pop(stable_key, None)
        self._poke()

    def health_changed(self, device: Device) -> None:
        self.health_calls += 1
        self._poke()

    def emit(self, device: Device, kind: EventKind, attributes: Mapping[str, str] | None = None,
             payload: bytes = b"") -> None:
        self.events.append(RecordedEvent(kind, device, dict(attributes or {})))
        self._poke()

    async def run_blocking(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(None, fn, *args)

    async def zeroconf(self) -> Any:
        raise AssertionError("the idcard backends do not use zeroconf")

    def kinds(self) -> list[EventKind]:
        return [event.kind for event in self.events]

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 10.0) -> None:
        """Wait until ``predicate()`` holds (re-checked whenever the backend reports something)."""
        deadline = asyncio.get_running_loop().time() + timeout
        while not predicate():
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                raise AssertionError("condition not reached in time")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), min(remaining, 0.2))


@pytest.fixture(scope="session")
def pcscd() -> Iterator[PcscdPeer]:
    """A private pcscd with one vpcd reader (two slots), for the whole session."""
    peer = PcscdPeer(PCSCD_SOCKET)
    peer.start()
    try:
        yield peer
    finally:
        peer.cleanup()


@pytest.fixture
def running_pcscd(pcscd: PcscdPeer) -> PcscdPeer:
    """The session pcscd, restarted if an earlier test stopped it."""
    pcscd.start()
    return pcscd


@pytest.fixture
def vpcd_card(running_pcscd: PcscdPeer) -> Iterator[Callable[..., VpcdCardProcess]]:
    """Factory for card processes on slot 0; every one started is stopped after the test."""
    started: list[VpcdCardProcess] = []

    def start(*extra: str, inserted: bool = True) -> VpcdCardProcess:
        card = VpcdCardProcess(running_pcscd.port, *extra, reader=running_pcscd.reader_names[0])
        card.start(inserted=inserted)
        started.append(card)
        return card

    yield start
    for card in started:
        card.stop()
    if started:
        # Let pcscd notice the card is gone before the next test puts one on the reader, or it
        # would carry the old card's state over to the new one.
        wait_for_card(running_pcscd.reader_names[0], present=False)


@pytest.fixture
def tiny_card(vpcd_card: Callable[..., VpcdCardProcess]) -> VpcdCardProcess:
    """A tiny ISO 7816 card (no eMRTD) on slot 0, already seen by pcscd."""
    card = vpcd_card("--card", "tests.idcard.tiny_card:TinyCard")
    wait_for_card(card.reader)
    return card


@pytest.fixture
def recording_context(tmp_path: Path) -> RecordingContext:
    return RecordingContext(tmp_path)


@pytest.fixture
async def pcsc_backend(running_pcscd: PcscdPeer, recording_context: RecordingContext
                       ) -> AsyncIterator[Any]:
    """A started ``pcsc`` backend; waits until it has found the vpcd reader."""
    from agent.drivers.idcard.reader import PcscBackend

    backend = PcscBackend(recording_context, {})
    await backend.start()
    try:
        await recording_context.wait_for(lambda: len(recording_context.devices) >= 2)
        yield backend
    finally:
        await backend.stop()
