"""Mapping IPP printer and job attributes to the agent's domain, and the privacy canary."""

from __future__ import annotations

import asyncio
import logging

import pytest

from agent.domain.device import Severity
from agent.domain.printer import PrintDocument, PrinterState, PrintJobState
from agent.drivers.printer.ipp import (
    IppClient,
    parse_capabilities,
    parse_job,
    parse_status,
    printer_http_url,
    split_reason,
)
from agent.drivers.printer.ipp_codec import Attribute, AttributeGroup, GroupTag, IntRange, ValueTag
from agent.errors import DeviceProtocolError, DeviceUnavailableError, InvalidRequestError
from tests.printer.documents import one_page_pdf
from tests.printer.peers import IppEvePrinter, free_port


def group(*attributes: Attribute) -> AttributeGroup:
    return AttributeGroup(GroupTag.PRINTER, attributes)


@pytest.mark.parametrize(("keyword", "code", "severity"), [
    ("toner-low-warning", "toner-low", Severity.WARNING),
    ("media-empty-error", "media-empty", Severity.ERROR),
    ("cover-open-report", "cover-open", Severity.INFO),
    ("media-jam", "media-jam", Severity.ERROR),  # no suffix: an error (RFC 8011 5.4.12)
])
def test_reason_suffix_becomes_severity(keyword: str, code: str, severity: Severity) -> None:
    condition = split_reason(keyword)
    assert (condition.code, condition.severity) == (code, severity)


def test_marker_attributes_become_supplies() -> None:
    status = parse_status(group(
        Attribute.of("printer-state", ValueTag.ENUM, 5),
        Attribute.of("printer-state-reasons", ValueTag.KEYWORD, "media-empty-error", "toner-low-warning"),
        Attribute.of("printer-state-message", ValueTag.TEXT, "Out of paper"),
        Attribute.of("marker-names", ValueTag.NAME, "Black Toner", "Cyan Ink", "Waste"),
        Attribute.of("marker-levels", ValueTag.INTEGER, 4, -3, 50),
        Attribute.of("marker-types", ValueTag.KEYWORD, "toner-cartridge", "ink-cartridge", "waste-toner"),
        Attribute.of("marker-colors", ValueTag.NAME, "#000000", "#00FFFF", "none"),
    ))
    assert status.state == PrinterState.STOPPED
    assert [(c.code, c.severity) for c in status.conditions] == [
        ("media-empty", Severity.ERROR), ("toner-low", Severity.WARNING)]
    assert status.message == "Out of paper"
    assert [(s.name, s.kind, s.level_percent, s.color) for s in status.supplies] == [
        ("Black Toner", "toner", 4, "#000000"), ("Cyan Ink", "ink", -1, "#00FFFF"),
        ("Waste", "waste", 50, "")]


def test_pwg_printer_supply_becomes_supplies() -> None:
    status = parse_status(group(
        Attribute.of("printer-state", ValueTag.ENUM, 3),
        Attribute.of("printer-state-reasons", ValueTag.KEYWORD, "none"),
        Attribute.of("printer-supply", ValueTag.OCTET_STRING,
                     b"index=1;type=toner;unit=percent;maxcapacity=200;level=50;colorantname=black;"),
        Attribute.of("printer-supply-description", ValueTag.TEXT, "Black Toner"),
    ))
    assert status.conditions == ()
    assert [(s.name, s.kind, s.level_percent, s.color) for s in status.supplies] == [
        ("Black Toner", "toner", 25, "black")]


def test_missing_or_bad_state_is_a_protocol_error() -> None:
    with pytest.raises(DeviceProtocolError):
        parse_status(group())
    with pytest.raises(DeviceProtocolError):
        parse_status(group(Attribute.of("printer-state", ValueTag.ENUM, 9)))
    with pytest.raises(DeviceProtocolError):
        parse_job(AttributeGroup(GroupTag.JOB, ()), "1")


def test_capabilities_and_job_mapping() -> None:
    caps = parse_capabilities(group(
        Attribute.of("document-format-supported", ValueTag.MIME_MEDIA_TYPE,
                     "application/octet-stream", "application/pdf", "image/pwg-raster"),
        Attribute.of("color-supported", ValueTag.BOOLEAN, True),
        Attribute.of("sides-supported", ValueTag.KEYWORD, "one-sided", "two-sided-long-edge"),
        Attribute.of("copies-supported", ValueTag.RANGE_OF_INTEGER, IntRange(1, 99)),
    ))
    assert caps.document_formats == ("application/pdf", "image/pwg-raster")
    assert caps.color
    assert caps.duplex
    assert caps.max_copies == 99
    job = parse_job(AttributeGroup(GroupTag.JOB, (
        Attribute.of("job-state", ValueTag.ENUM, 6),
        Attribute.of("job-state-reasons", ValueTag.KEYWORD, "printer-stopped"),
        Attribute.of("job-impressions-completed", ValueTag.INTEGER, 2),
    )), "7")
    assert (job.state, job.reasons, job.pages_printed, job.printer_job_id) == (
        PrintJobState.PROCESSING, ("printer-stopped",), 2, "7")


def test_uri_mapping() -> None:
    assert printer_http_url("ipp://127.0.0.1/ipp/print") == "http://127.0.0.1:631/ipp/print"
    assert printer_http_url("ipps://127.0.0.1:8443/x") == "https://127.0.0.1:8443/x"
    with pytest.raises(InvalidRequestError):
        printer_http_url("lpd://127.0.0.1/queue")


async def test_unreachable_printer_is_unavailable() -> None:
    client = IppClient(f"ipp://127.0.0.1:{free_port()}/ipp/print", timeout=2)
    try:
        with pytest.raises(DeviceUnavailableError):
            await client.printer_status()
    finally:
        await client.aclose()


async def test_canary_never_reaches_logs(ippeve: IppEvePrinter, caplog: pytest.LogCaptureFixture) -> None:
    canary = "CANARY-CITIZEN-079203001234"
    caplog.set_level(logging.DEBUG)
    client = IppClient(ippeve.uri)
    try:
        document = PrintDocument(one_page_pdf(canary), "application/pdf", name="receipt")
        assert canary not in repr(document)
        job_id = await client.print_job(document)
        async with asyncio.timeout(20):
            while not (await client.get_job_attributes(job_id)).state.terminal:
                await asyncio.sleep(0.1)
        with pytest.raises(InvalidRequestError) as info:
            await client.print_job(PrintDocument(canary.encode(), "text/x-canary"))
        assert canary not in str(info.value)
    finally:
        await client.aclose()
    assert caplog.records  # httpx logged the requests at DEBUG/INFO
    assert canary not in caplog.text


async def test_ipps_uri_talks_tls_to_a_self_signed_printer(ippeve: IppEvePrinter) -> None:
    client = IppClient(ippeve.uri.replace("ipp://", "ipps://"))
    try:
        status = await client.printer_status()
    finally:
        await client.aclose()
    assert status.state.value == "idle"
    strict = IppClient(ippeve.uri.replace("ipp://", "ipps://"), verify_tls=True)
    try:
        with pytest.raises(DeviceUnavailableError):
            await strict.printer_status()
    finally:
        await strict.aclose()
