"""Fixtures for the ID-card tests: a private pcscd with a vpcd reader (two slots: two PC/SC
readers), vpcd card processes, and the recording driver context of ``tests.support``.

The pcscd socket path is claimed at import time, before anything in this process talks to
pcscd (libpcsclite reads ``PCSCLITE_CSOCK_NAME`` once): see ``pcsc_testbed``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.idcard.pcsc_testbed import PcscdPeer, VpcdCardProcess, claim_socket_path, wait_for_card
from tests.support.context import RecordingContext

PCSCD_SOCKET = claim_socket_path()


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
    """Factory for card processes on slot 0 (or ``slot=1``, the second reader); every one
    started is stopped after the test."""
    started: list[VpcdCardProcess] = []

    def start(*extra: str, inserted: bool = True, slot: int = 0) -> VpcdCardProcess:
        card = VpcdCardProcess(running_pcscd.port + slot, *extra, reader=running_pcscd.reader_names[slot])
        card.start(inserted=inserted)
        started.append(card)
        return card

    yield start
    for card in started:
        card.stop()
    for reader in sorted({card.reader for card in started}):
        # Let pcscd notice the card is gone before the next test puts one on the reader, or it
        # would carry the old card's state over to the new one.
        wait_for_card(reader, present=False)


@pytest.fixture
def tiny_card(vpcd_card: Callable[..., VpcdCardProcess]) -> VpcdCardProcess:
    """A tiny ISO 7816 card (no eMRTD) on slot 0, already seen by pcscd."""
    card = vpcd_card("--card", "tests.idcard.tiny_card:TinyCard")
    wait_for_card(card.reader)
    return card


@pytest.fixture
async def recording_context(tmp_path: Path) -> AsyncIterator[RecordingContext]:
    context = RecordingContext(state_path=tmp_path)
    try:
        yield context
    finally:
        await context.aclose()


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
