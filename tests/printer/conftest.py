"""Printer test peers, started once per session from tests/printer/peers.py."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.printer.context import PrinterTestContext
from tests.printer.peers import CupsDaemon, IppEvePrinter, MdnsStack


@pytest.fixture(scope="session")
def mdns(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MdnsStack]:
    stack = MdnsStack(tmp_path_factory.mktemp("mdns"))
    stack.start()
    try:
        yield stack
    finally:
        stack.stop()


@pytest.fixture(scope="session")
def ippeve_session(mdns: MdnsStack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[IppEvePrinter]:
    printer = IppEvePrinter(tmp_path_factory.mktemp("ippeve"), mdns.bus_address)
    printer.start()
    try:
        yield printer
    finally:
        printer.stop()


@pytest.fixture
def ippeve(ippeve_session: IppEvePrinter) -> Iterator[IppEvePrinter]:
    """The session's ippeveprinter, back to full supplies and plain jobs for each test."""
    ippeve_session.reset()
    yield ippeve_session
    ippeve_session.reset()


@pytest.fixture
async def ctx(tmp_path: Path) -> AsyncIterator[PrinterTestContext]:
    context = PrinterTestContext(tmp_path)
    try:
        yield context
    finally:
        await context.aclose()


@pytest.fixture(scope="session")
def cupsd(mdns: MdnsStack, ippeve_session: IppEvePrinter,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[CupsDaemon]:
    """A hand-started cupsd with one queue, ``counter``, printing to the session's ippeveprinter."""
    daemon = CupsDaemon(tmp_path_factory.mktemp("cups"), mdns.bus_address)
    daemon.start()
    try:
        daemon.add_queue("counter", ippeve_session.uri)
        yield daemon
    finally:
        daemon.stop()
