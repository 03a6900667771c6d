"""Privacy canary: page content never reaches a log, a health report or an error message."""

from __future__ import annotations

import io
import logging
import uuid
from collections.abc import AsyncIterator

import pytest

from agent.documents.pdf_stream import PdfStreamWriter, stream_pdf
from agent.domain.scanner import ScannedPage, ScanSettings, ScanSource
from agent.drivers.scanner.escl_discovery import probe_escl
from agent.errors import AgentError, DeviceStateError
from tests.scanner.conftest import EmulatorProcess
from tests.support.context import RecordingContext


async def test_scanned_pages_never_reach_logs_or_errors(
    ctx: RecordingContext, emulator: EmulatorProcess, caplog: pytest.LogCaptureFixture
) -> None:
    canary = f"CANARY-CITIZEN-{uuid.uuid4().hex}"
    emulator.set(page_comment=canary, sheets=5, jam_after=3)
    caplog.set_level(logging.DEBUG)
    scanner = await probe_escl(ctx, emulator.url, backend="escl")
    pages: list[ScannedPage] = []

    async def tee() -> AsyncIterator[ScannedPage]:
        async for page in scanner.scan(ScanSettings(source=ScanSource.ADF, resolution=75)):
            logging.getLogger("agent").debug("got %r", page)  # what a careless caller might log
            pages.append(page)
            yield page

    writer = PdfStreamWriter()
    received = io.BytesIO()
    error: AgentError | None = None
    try:
        async for chunk in stream_pdf(tee(), writer):
            received.write(chunk)
    except DeviceStateError as exc:
        error = exc
    await scanner.close()

    # the canary really went through: it is in the pages and the PDF bytes
    assert len(pages) == 3
    assert all(canary.encode() in page.data for page in pages)
    assert canary.encode() in received.getvalue()
    assert error is not None
    assert error.reason == "PAPER_JAM"

    texts = [record.getMessage() for record in caplog.records]
    texts += [record.exc_text or "" for record in caplog.records]
    texts += [repr(page) for page in pages]
    texts += [str(error), repr(error), repr(scanner.health()), scanner.health().last_error]
    assert caplog.records  # logging was really captured (DEBUG from httpx and the agent)
    for text in texts:
        assert canary not in text
