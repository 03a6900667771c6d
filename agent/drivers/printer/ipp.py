"""An async IPP client (RFC 8011 operations over HTTP, RFC 8010 encoding) and the
mapping of printer attributes to the agent's domain types.

Only the operations the agent needs: Get-Printer-Attributes, Validate-Job,
Print-Job, Get-Job-Attributes, Cancel-Job. Status codes map to the agent's
errors in :func:`raise_for_status`, nowhere else.
"""

from __future__ import annotations

import enum
import itertools
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass

import httpx

from agent.domain.device import Condition, Severity, SupplyLevel
from agent.domain.printer import (
    PrintDocument,
    PrinterCapabilities,
    PrinterState,
    PrinterStatus,
    PrintJobState,
    PrintJobStatus,
)
from agent.drivers.printer.ipp_codec import (
    Attribute,
    AttributeGroup,
    GroupTag,
    IntRange,
    IppMessage,
    ValueTag,
    decode,
    encode,
)
from agent.errors import (
    AgentError,
    DataFormatError,
    DeviceBusyError,
    DeviceProtocolError,
    DeviceUnavailableError,
    ForbiddenError,
    InvalidRequestError,
    NotFoundError,
    OperationTimeoutError,
)


class Operation(enum.IntEnum):
    PRINT_JOB = 0x0002
    VALIDATE_JOB = 0x0004
    CANCEL_JOB = 0x0008
    GET_JOB_ATTRIBUTES = 0x0009
    GET_PRINTER_ATTRIBUTES = 0x000B


class Status(enum.IntEnum):
    SUCCESSFUL_OK = 0x0000
    CLIENT_ERROR_BAD_REQUEST = 0x0400
    CLIENT_ERROR_FORBIDDEN = 0x0401
    CLIENT_ERROR_NOT_AUTHENTICATED = 0x0402
    CLIENT_ERROR_NOT_AUTHORIZED = 0x0403
    CLIENT_ERROR_NOT_POSSIBLE = 0x0404
    CLIENT_ERROR_NOT_FOUND = 0x0406
    CLIENT_ERROR_GONE = 0x0407
    CLIENT_ERROR_REQUEST_ENTITY_TOO_LARGE = 0x0408
    CLIENT_ERROR_DOCUMENT_FORMAT_NOT_SUPPORTED = 0x040A
    CLIENT_ERROR_ATTRIBUTES_OR_VALUES_NOT_SUPPORTED = 0x040B
    CLIENT_ERROR_COMPRESSION_NOT_SUPPORTED = 0x040F
    CLIENT_ERROR_DOCUMENT_FORMAT_ERROR = 0x0411
    SERVER_ERROR_INTERNAL_ERROR = 0x0500
    SERVER_ERROR_OPERATION_NOT_SUPPORTED = 0x0501
    SERVER_ERROR_SERVICE_UNAVAILABLE = 0x0502
    SERVER_ERROR_VERSION_NOT_SUPPORTED = 0x0503
    SERVER_ERROR_DEVICE_ERROR = 0x0504
    SERVER_ERROR_TEMPORARY_ERROR = 0x0505
    SERVER_ERROR_NOT_ACCEPTING_JOBS = 0x0506
    SERVER_ERROR_BUSY = 0x0507


#: Printer attributes the agent reads; asking for these instead of "all" keeps polls small.
STATUS_ATTRIBUTES = (
    "printer-state", "printer-state-reasons", "printer-state-message",
    "marker-names", "marker-levels", "marker-types", "marker-colors",
    "printer-supply", "printer-supply-description",
)
DESCRIPTION_ATTRIBUTES = (
    "printer-uuid", "printer-name", "printer-make-and-model", "printer-info",
    "printer-uri-supported", "document-format-supported", "color-supported", "sides-supported",
    "media-supported", "copies-supported", "printer-device-id",
)
JOB_ATTRIBUTES = ("job-id", "job-state", "job-state-reasons", "job-state-message",
                  "job-impressions-completed")

#: The agent always names a format; "application/octet-stream" (auto-sense) does not count.
AUTO_SENSE_FORMAT = "application/octet-stream"

_JOB_STATES = {
    3: PrintJobState.PENDING, 4: PrintJobState.PENDING,  # pending, pending-held
    5: PrintJobState.PROCESSING, 6: PrintJobState.PROCESSING,  # processing, processing-stopped
    7: PrintJobState.CANCELLED, 8: PrintJobState.ABORTED, 9: PrintJobState.COMPLETED,
}
_PRINTER_STATES = {3: PrinterState.IDLE, 4: PrinterState.PROCESSING, 5: PrinterState.STOPPED}
_SUFFIXES = (("-error", Severity.ERROR), ("-warning", Severity.WARNING), ("-report", Severity.INFO))

#: Plain-language messages for the reasons IT staff care about most.
REASON_MESSAGES = {
    "media-empty": "out of paper",
    "media-needed": "paper needed",
    "media-jam": "paper jam",
    "cover-open": "cover open",
    "door-open": "door open",
    "toner-low": "toner low",
    "toner-empty": "toner empty",
    "marker-supply-low": "supply low",
    "marker-supply-empty": "supply empty",
    "offline": "offline",
    "paused": "paused",
}


def printer_http_url(uri: str) -> str:
    """``ipp://host:631/ipp/print`` -> ``http://host:631/ipp/print`` (``ipps`` -> ``https``)."""
    parts = urllib.parse.urlsplit(uri)
    scheme = {"ipp": "http", "ipps": "https", "http": "http", "https": "https"}.get(parts.scheme)
    if scheme is None or not parts.hostname:
        raise InvalidRequestError(f"not an IPP printer URI: {uri!r}")
    port = parts.port or (631 if parts.scheme in ("ipp", "ipps") else None)
    netloc = parts.hostname if port is None else f"{parts.hostname}:{port}"
    if ":" in parts.hostname:
        netloc = f"[{parts.hostname}]" + (f":{port}" if port else "")
    return urllib.parse.urlunsplit((scheme, netloc, parts.path or "/", "", ""))


def split_reason(keyword: str) -> Condition:
    """``toner-low-warning`` -> Condition("toner-low", WARNING). Unsuffixed reasons are errors
    (RFC 8011 5.4.12), except CUPS' own ``cups-*`` bookkeeping keywords."""
    for suffix, severity in _SUFFIXES:
        if keyword.endswith(suffix):
            code = keyword[: -len(suffix)]
            return Condition(code, severity, REASON_MESSAGES.get(code, code.replace("-", " ")))
    # CUPS adds its own unsuffixed keywords (cups-waiting-for-job-completed...): bookkeeping
    severity = Severity.INFO if keyword.startswith("cups-") else Severity.ERROR
    return Condition(keyword, severity, REASON_MESSAGES.get(keyword, keyword.replace("-", " ")))


def _supply_kind(marker_type: str) -> str:
    if marker_type.startswith("waste"):
        return "waste"
    for kind in ("toner", "ink", "ribbon", "staples", "paper"):
        if kind in marker_type:
            return kind
    return marker_type or "unknown"


def _percent(level: int) -> int:
    # marker-levels: -1 other, -2 unknown, -3 "some remaining" -> unknown
    return level if 0 <= level <= 100 else -1


def parse_supplies(printer: AttributeGroup) -> tuple[SupplyLevel, ...]:
    """marker-* attributes (CUPS, most printers), else PWG 5100.13 ``printer-supply``."""
    names = printer.get("marker-names")
    levels = printer.get("marker-levels")
    if names is not None and levels is not None:
        types = printer.get("marker-types")
        colors = printer.get("marker-colors")
        type_list = types.strings() if types else ()
        color_list = colors.strings() if colors else ()
        out = []
        for index, (name, level) in enumerate(zip(names.strings(), levels.ints(), strict=False)):
            kind = _supply_kind(type_list[index] if index < len(type_list) else "")
            color = color_list[index] if index < len(color_list) else ""
            out.append(SupplyLevel(name, kind, _percent(level), "" if color == "none" else color))
        return tuple(out)
    supply = printer.get("printer-supply")
    if supply is None:
        return ()
    descriptions = printer.get("printer-supply-description")
    description_list = descriptions.strings() if descriptions else ()
    out = []
    for index, raw in enumerate(supply.strings()):
        fields = dict(part.split("=", 1) for part in raw.split(";") if "=" in part)
        try:
            level, capacity = int(fields.get("level", "-2")), int(fields.get("maxcapacity", "100"))
        except ValueError:
            raise DataFormatError("printer-supply value is malformed") from None
        percent = level * 100 // capacity if capacity > 0 and level >= 0 else -1
        name = description_list[index] if index < len(description_list) else fields.get("type", "supply")
        color = fields.get("colorantname", "")
        out.append(SupplyLevel(name, _supply_kind(fields.get("type", "")), _percent(percent),
                               "" if color in ("unknown", "none") else color))
    return tuple(out)


def parse_status(printer: AttributeGroup) -> PrinterStatus:
    state_attr = printer.get("printer-state")
    state_value = state_attr.first if state_attr else None
    if not isinstance(state_value, int) or state_value not in _PRINTER_STATES:
        raise DeviceProtocolError("printer answered without a valid printer-state")
    reasons = printer.get("printer-state-reasons")
    conditions = tuple(split_reason(keyword) for keyword in (reasons.strings() if reasons else ())
                       if keyword != "none")
    message_attr = printer.get("printer-state-message")
    message = message_attr.strings()[0] if message_attr and message_attr.strings() else ""
    return PrinterStatus(_PRINTER_STATES[state_value], conditions, parse_supplies(printer), message)


def parse_capabilities(printer: AttributeGroup) -> PrinterCapabilities:
    formats = printer.get("document-format-supported")
    color = printer.get("color-supported")
    sides = printer.get("sides-supported")
    media = printer.get("media-supported")
    copies = printer.get("copies-supported")
    max_copies = 1
    if copies is not None and isinstance(copies.first, IntRange):
        max_copies = copies.first.upper
    elif copies is not None and copies.ints():
        max_copies = max(copies.ints())
    return PrinterCapabilities(
        document_formats=tuple(f for f in (formats.strings() if formats else ()) if f != AUTO_SENSE_FORMAT),
        color=color is not None and color.first is True,
        duplex=sides is not None and any(s.startswith("two-sided") for s in sides.strings()),
        media=media.strings() if media else (),
        max_copies=max(1, max_copies),
    )


def parse_job(job: AttributeGroup, job_id: str) -> PrintJobStatus:
    state_attr = job.get("job-state")
    state_value = state_attr.first if state_attr else None
    if not isinstance(state_value, int) or state_value not in _JOB_STATES:
        raise DeviceProtocolError("printer answered without a valid job-state")
    reasons = job.get("job-state-reasons")
    message = job.get("job-state-message")
    impressions = job.get("job-impressions-completed")
    return PrintJobStatus(
        state=_JOB_STATES[state_value],
        printer_job_id=job_id,
        reasons=tuple(r for r in (reasons.strings() if reasons else ()) if r != "none"),
        pages_printed=impressions.ints()[0] if impressions and impressions.ints() else 0,
        message=message.strings()[0] if message and message.strings() else "",
    )


def raise_for_status(response: IppMessage, operation: Operation) -> None:
    """Map an IPP status-code to the agent's errors (successful-* codes pass)."""
    code = response.code
    if code < 0x0100:
        return
    message_attr = response.find(GroupTag.OPERATION, "status-message")
    detail = message_attr.strings()[0] if message_attr and message_attr.strings() else ""
    text = f"IPP {operation.name.replace('_', '-').title()} failed: status 0x{code:04x}"
    text += f" ({detail})" if detail else ""
    errors: dict[int, type[AgentError]] = {
        Status.SERVER_ERROR_BUSY: DeviceBusyError,
        Status.SERVER_ERROR_SERVICE_UNAVAILABLE: DeviceUnavailableError,
        Status.SERVER_ERROR_NOT_ACCEPTING_JOBS: DeviceUnavailableError,
        Status.SERVER_ERROR_TEMPORARY_ERROR: DeviceBusyError,
        Status.CLIENT_ERROR_NOT_FOUND: NotFoundError,
        Status.CLIENT_ERROR_GONE: NotFoundError,
        Status.CLIENT_ERROR_FORBIDDEN: ForbiddenError,
        Status.CLIENT_ERROR_NOT_AUTHENTICATED: ForbiddenError,
        Status.CLIENT_ERROR_NOT_AUTHORIZED: ForbiddenError,
        Status.CLIENT_ERROR_DOCUMENT_FORMAT_NOT_SUPPORTED: InvalidRequestError,
        Status.CLIENT_ERROR_DOCUMENT_FORMAT_ERROR: InvalidRequestError,
        Status.CLIENT_ERROR_REQUEST_ENTITY_TOO_LARGE: InvalidRequestError,
        Status.CLIENT_ERROR_ATTRIBUTES_OR_VALUES_NOT_SUPPORTED: InvalidRequestError,
        Status.CLIENT_ERROR_COMPRESSION_NOT_SUPPORTED: InvalidRequestError,
    }
    raise errors.get(code, DeviceProtocolError)(text)


@dataclass(frozen=True, slots=True)
class PrinterSnapshot:
    """One Get-Printer-Attributes answer, mapped."""

    status: PrinterStatus
    capabilities: PrinterCapabilities
    uuid: str
    name: str
    make_and_model: str


class IppClient:
    """One printer URI, one keep-alive HTTP connection pool."""

    def __init__(self, uri: str, *, timeout: float = 10.0, verify_tls: bool = False,
                 user_name: str = "centre-agent") -> None:
        self.uri = uri
        self._url = printer_http_url(uri)
        self._user = user_name
        self._ids = itertools.count(1)
        # printers carry self-signed certificates; discovery finds endpoints, never trust
        self._http = httpx.AsyncClient(timeout=timeout, verify=verify_tls,
                                       headers={"Content-Type": "application/ipp"})

    async def aclose(self) -> None:
        await self._http.aclose()

    def _operation_group(self, *extra: Attribute) -> AttributeGroup:
        return AttributeGroup(GroupTag.OPERATION, (
            Attribute.of("attributes-charset", ValueTag.CHARSET, "utf-8"),
            Attribute.of("attributes-natural-language", ValueTag.NATURAL_LANGUAGE, "en"),
            Attribute.of("printer-uri", ValueTag.URI, self.uri),
            Attribute.of("requesting-user-name", ValueTag.NAME, self._user),
            *extra,
        ))

    async def call(self, operation: Operation, groups: Sequence[AttributeGroup], data: bytes = b"",
                   ) -> IppMessage:
        request = IppMessage(code=operation, request_id=next(self._ids), groups=tuple(groups), data=data)
        try:
            reply = await self._http.post(self._url, content=encode(request))
        except httpx.TimeoutException:
            raise OperationTimeoutError(f"IPP printer at {self.uri} did not answer in time") from None
        except httpx.HTTPError as exc:
            raise DeviceUnavailableError(f"IPP printer at {self.uri} unreachable: {type(exc).__name__}"
                                         ) from None
        if reply.status_code == 503:
            raise DeviceBusyError(f"IPP printer at {self.uri} answered HTTP 503")
        if reply.status_code != 200:
            raise DeviceProtocolError(f"IPP printer at {self.uri} answered HTTP {reply.status_code}")
        response = decode(reply.content)
        if response.request_id != request.request_id:
            raise DeviceProtocolError("IPP response request-id does not match the request")
        raise_for_status(response, operation)
        return response

    async def get_printer_attributes(self, requested: Sequence[str] = ()) -> AttributeGroup:
        extra = (Attribute.of("requested-attributes", ValueTag.KEYWORD, *requested),) if requested else ()
        response = await self.call(Operation.GET_PRINTER_ATTRIBUTES, [self._operation_group(*extra)])
        groups = response.groups_of(GroupTag.PRINTER)
        if not groups:
            raise DeviceProtocolError("IPP Get-Printer-Attributes answer has no printer group")
        return AttributeGroup(GroupTag.PRINTER, tuple(a for g in groups for a in g.attributes))

    async def snapshot(self) -> PrinterSnapshot:
        printer = await self.get_printer_attributes((*DESCRIPTION_ATTRIBUTES, *STATUS_ATTRIBUTES))
        uuid_attr = printer.get("printer-uuid")
        name_attr = printer.get("printer-name")
        model_attr = printer.get("printer-make-and-model")
        return PrinterSnapshot(
            status=parse_status(printer),
            capabilities=parse_capabilities(printer),
            uuid=uuid_attr.strings()[0] if uuid_attr and uuid_attr.strings() else "",
            name=name_attr.strings()[0] if name_attr and name_attr.strings() else "",
            make_and_model=model_attr.strings()[0] if model_attr and model_attr.strings() else "",
        )

    async def printer_status(self) -> PrinterStatus:
        return parse_status(await self.get_printer_attributes(STATUS_ATTRIBUTES))

    def _job_groups(self, document: PrintDocument) -> list[AttributeGroup]:
        operation = self._operation_group(
            Attribute.of("job-name", ValueTag.NAME, document.name or "document"),
            Attribute.of("document-format", ValueTag.MIME_MEDIA_TYPE, document.mime_type),
        )
        template: list[Attribute] = []
        if document.copies != 1:
            template.append(Attribute.of("copies", ValueTag.INTEGER, document.copies))
        if document.duplex:
            template.append(Attribute.of("sides", ValueTag.KEYWORD, "two-sided-long-edge"))
        if document.media:
            template.append(Attribute.of("media", ValueTag.KEYWORD, document.media))
        groups = [operation]
        if template:
            groups.append(AttributeGroup(GroupTag.JOB, tuple(template)))
        return groups

    async def validate_job(self, document: PrintDocument) -> None:
        await self.call(Operation.VALIDATE_JOB, self._job_groups(document))

    async def print_job(self, document: PrintDocument) -> str:
        response = await self.call(Operation.PRINT_JOB, self._job_groups(document), document.data)
        job_id = response.find(GroupTag.JOB, "job-id")
        if job_id is None or not job_id.ints():
            raise DeviceProtocolError("IPP Print-Job answer has no job-id")
        return str(job_id.ints()[0])

    def _job_operation_group(self, job_id: str, *extra: Attribute) -> AttributeGroup:
        try:
            number = int(job_id)
        except ValueError:
            raise NotFoundError(f"no IPP job {job_id!r}") from None
        return self._operation_group(Attribute.of("job-id", ValueTag.INTEGER, number), *extra)

    async def get_job_attributes(self, job_id: str) -> PrintJobStatus:
        group = self._job_operation_group(
            job_id, Attribute.of("requested-attributes", ValueTag.KEYWORD, *JOB_ATTRIBUTES))
        response = await self.call(Operation.GET_JOB_ATTRIBUTES, [group])
        jobs = response.groups_of(GroupTag.JOB)
        if not jobs:
            raise DeviceProtocolError("IPP Get-Job-Attributes answer has no job group")
        return parse_job(jobs[0], job_id)

    async def cancel_job(self, job_id: str) -> None:
        await self.call(Operation.CANCEL_JOB, [self._job_operation_group(job_id)])
