"""Protobuf <-> domain conversion. The only module of the agent that builds protobuf messages
from domain types (services build requests' domain values here too)."""

from __future__ import annotations

import datetime as dt
import hashlib

from google.protobuf.timestamp_pb2 import Timestamp

from agent.domain import device as d
from agent.domain import idcard as idc
from agent.domain import scanner as sc
from agent.domain.events import Event, EventKind
from agent.domain.fingerprint import FingerprintTemplate, TemplateFormat
from agent.domain.printer import PrinterCapabilities, PrinterState, PrinterStatus, PrintJobState
from agent.drivers.idcard.qr_key import key_from_qr_text
from agent.errors import InvalidRequestError
from centre.agent.v1 import common_pb2 as cpb
from centre.agent.v1 import devices_pb2 as dpb
from centre.agent.v1 import fingerprint_pb2 as fpb
from centre.agent.v1 import idcard_pb2 as ipb
from centre.agent.v1 import printer_pb2 as ppb
from centre.agent.v1 import scanner_pb2 as spb

FAMILY_TO_PB = {f: cpb.DeviceFamily.Value(f"DEVICE_FAMILY_{f.name}") for f in d.DeviceFamily}
FAMILY_FROM_PB = {v: k for k, v in FAMILY_TO_PB.items()}
STATE_TO_PB = {s: cpb.DeviceState.Value(f"DEVICE_STATE_{s.name}") for s in d.DeviceState}
SEVERITY_TO_PB = {s: cpb.Severity.Value(f"SEVERITY_{s.name}") for s in d.Severity}
EVENT_TO_PB = {k: dpb.EventKind.Value(f"EVENT_KIND_{k.name}") for k in EventKind}
VERDICT_TO_PB = {v: ipb.Verdict.Value(f"VERDICT_{v.name}") for v in idc.Verdict}
FIELD_SOURCE_TO_PB = {s: ipb.FieldSource.Value(f"FIELD_SOURCE_{s.name}") for s in idc.FieldSource}
TEMPLATE_TO_PB = {t: fpb.TemplateFormat.Value(f"TEMPLATE_FORMAT_{t.name}") for t in TemplateFormat}
TEMPLATE_FROM_PB = {v: k for k, v in TEMPLATE_TO_PB.items()}
SOURCE_TO_PB = {s: spb.ScanSource.Value(f"SCAN_SOURCE_{s.name}") for s in sc.ScanSource}
SOURCE_FROM_PB = {v: k for k, v in SOURCE_TO_PB.items()}
MODE_TO_PB = {m: spb.ColorMode.Value(f"COLOR_MODE_{m.name}") for m in sc.ColorMode}
MODE_FROM_PB = {v: k for k, v in MODE_TO_PB.items()}
PRINT_STATE_TO_PB = {s: ppb.PrintJobState.Value(f"PRINT_JOB_STATE_{s.name}") for s in PrintJobState}
PRINTER_STATE_TO_PB = {s: ppb.PrinterState.Value(f"PRINTER_STATE_{s.name}") for s in PrinterState}


def timestamp(epoch: float) -> Timestamp:
    ts = Timestamp()
    ts.FromNanoseconds(int(epoch * 1e9))
    return ts


def families_from_pb(values: object) -> list[d.DeviceFamily]:
    out = []
    for value in values:  # type: ignore[attr-defined]
        try:
            out.append(FAMILY_FROM_PB[value])
        except KeyError:
            raise InvalidRequestError(f"unknown device family {value}") from None
    return out


def condition_pb(c: d.Condition) -> cpb.Condition:
    return cpb.Condition(code=c.code, severity=SEVERITY_TO_PB[c.severity], message=c.message)


def supply_pb(s: d.SupplyLevel) -> cpb.SupplyLevel:
    return cpb.SupplyLevel(name=s.name, kind=s.kind, level_percent=s.level_percent, color=s.color)


def device_pb(info: d.DeviceInfo, state_since: float = 0.0) -> cpb.Device:
    health = cpb.DeviceHealth(
        conditions=[condition_pb(c) for c in info.health.conditions],
        supplies=[supply_pb(s) for s in info.health.supplies],
        counters={k: int(v) for k, v in info.health.counters.items()},
        last_error=info.health.last_error)
    msg = cpb.Device(id=info.id, family=FAMILY_TO_PB[info.family], backend=info.backend, name=info.name,
                     vendor=info.vendor, model=info.model, serial=info.serial, connection=info.connection,
                     state=STATE_TO_PB[info.state], health=health,
                     features=sorted(info.capabilities.features), lease_holder=info.lease_holder,
                     simulated=info.simulated, card_present=info.card_present)
    if state_since:
        msg.state_since.CopyFrom(timestamp(state_since))
    return msg


def barcode_pb(event: Event) -> dpb.BarcodeScanned:
    from agent.drivers.idcard.qr import is_cccd_qr

    text = event.payload.decode("utf-8", errors="replace")
    flagged = event.attributes.get("cccd_qr")
    cccd = flagged == "true" if flagged is not None else is_cccd_qr(text)
    return dpb.BarcodeScanned(text=text, symbology=event.attributes.get("symbology", ""), cccd_qr=cccd)


def event_pb(event: Event) -> dpb.Event:
    msg = dpb.Event(seq=event.seq, kind=EVENT_TO_PB[event.kind], device_id=event.device_id,
                    attributes=dict(event.attributes))
    msg.time.CopyFrom(timestamp(event.timestamp))
    if event.device is not None:
        msg.device.CopyFrom(device_pb(event.device))
    if event.kind is EventKind.BARCODE_SCANNED:
        msg.barcode.CopyFrom(barcode_pb(event))
    return msg


# -- ID cards ------------------------------------------------------------------------------------

def date_pb(value: dt.date | None) -> cpb.Date | None:
    if value is None:
        return None
    return cpb.Date(year=value.year, month=value.month, day=value.day)


def access_key_from_pb(request: ipb.ReadCardRequest) -> idc.AccessKey:
    which = request.WhichOneof("key")
    if which == "mrz":
        mrz = request.mrz
        for name, value, size in (("document_number", mrz.document_number, (1, 20)),
                                  ("date_of_birth", mrz.date_of_birth, (6, 6)),
                                  ("date_of_expiry", mrz.date_of_expiry, (6, 6))):
            if not size[0] <= len(value) <= size[1] or not value.replace("<", "").isalnum():
                raise InvalidRequestError(f"mrz.{name} is malformed")
        if not (mrz.date_of_birth.isdigit() and mrz.date_of_expiry.isdigit()):
            raise InvalidRequestError("MRZ dates must be YYMMDD")
        return idc.MrzKey(mrz.document_number.upper(), mrz.date_of_birth, mrz.date_of_expiry)
    if which == "can":
        if not (request.can.isdigit() and len(request.can) == 6):
            raise InvalidRequestError("can must be 6 digits")
        return idc.CanKey(request.can)
    if which == "qr":
        return key_from_qr_text(request.qr)
    raise InvalidRequestError("give an MRZ key, a CAN or the card's QR code")


def personal_pb(p: idc.PersonalData) -> ipb.PersonalData:
    msg = ipb.PersonalData(
        document_type=p.document_type, issuing_state=p.issuing_state, document_number=p.document_number,
        id_number=p.id_number, full_name=p.full_name, sex=p.sex, nationality=p.nationality,
        ethnicity=p.ethnicity, religion=p.religion, place_of_origin=p.place_of_origin,
        place_of_residence=p.place_of_residence, identifying_marks=p.identifying_marks,
        father_name=p.father_name, mother_name=p.mother_name, spouse_name=p.spouse_name,
        old_id_number=p.old_id_number, mrz=p.mrz, nationality_name=p.nationality_name,
        extra_fields=[ipb.ExtraField(index=e.index, values=list(e.values)) for e in p.extra_fields])
    for name in msg.DESCRIPTOR.fields_by_name:
        if name not in ("sources", "extra_fields"):
            msg.sources[name] = FIELD_SOURCE_TO_PB[p.sources.get(name, idc.FieldSource.MISSING)]
    for field_name, value in (("date_of_birth", p.date_of_birth), ("date_of_expiry", p.date_of_expiry),
                              ("date_of_issue", p.date_of_issue)):
        date = date_pb(value)
        if date is not None:
            getattr(msg, field_name).CopyFrom(date)
    return msg


def card_read_pb(read: idc.CardRead, device_id: str) -> ipb.ReadCardResponse:
    v = read.verification
    msg = ipb.ReadCardResponse(
        personal=personal_pb(read.personal),
        verification=ipb.Verification(passive=VERDICT_TO_PB[v.passive], active=VERDICT_TO_PB[v.active],
                                      chip=VERDICT_TO_PB[v.chip], details=list(v.details),
                                      data=VERDICT_TO_PB[v.data]),
        data_groups_read=list(read.data_groups_read), access_protocol=read.access_protocol,
        raw_data_groups=dict(read.raw_data_groups), device_id=device_id)
    if read.face is not None:
        msg.face.CopyFrom(ipb.FaceImage(jpeg=read.face.jpeg, original_mime_type=read.face.original_mime_type,
                                        width=read.face.width, height=read.face.height,
                                        sha256=hashlib.sha256(read.face.jpeg).hexdigest()))
    return msg


def card_qr_pb(q: idc.CardQrData) -> ipb.CardQrData:
    msg = ipb.CardQrData(id_number=q.id_number, old_id_number=q.old_id_number, full_name=q.full_name,
                         sex=q.sex, place_of_residence=q.place_of_residence)
    for name, value in (("date_of_birth", q.date_of_birth), ("date_of_issue", q.date_of_issue)):
        date = date_pb(value)
        if date is not None:
            getattr(msg, name).CopyFrom(date)
    return msg


# -- fingerprints --------------------------------------------------------------------------------

def template_from_pb(t: fpb.FingerprintTemplate) -> FingerprintTemplate:
    if t.format not in TEMPLATE_FROM_PB:
        raise InvalidRequestError("template format is missing or unknown")
    if not t.data or len(t.data) > 1 << 20:
        raise InvalidRequestError("template data is empty or larger than 1 MiB")
    return FingerprintTemplate(TEMPLATE_FROM_PB[t.format], bytes(t.data), t.finger)


def template_pb(t: FingerprintTemplate) -> fpb.FingerprintTemplate:
    return fpb.FingerprintTemplate(format=TEMPLATE_TO_PB[t.format], data=t.data, finger=t.finger)


# -- scanners ------------------------------------------------------------------------------------

def scanner_capabilities_pb(c: sc.ScannerCapabilities) -> spb.ScannerCapabilities:
    return spb.ScannerCapabilities(sources=[SOURCE_TO_PB[s] for s in c.sources], resolutions=list(c.resolutions),
                                   color_modes=[MODE_TO_PB[m] for m in c.color_modes],
                                   max_width_mm=c.max_width_mm, max_height_mm=c.max_height_mm)


def scan_settings_from_pb(r: spb.ScanRequest) -> sc.ScanSettings:
    source = SOURCE_FROM_PB.get(r.source, sc.ScanSource.FLATBED) if r.source else sc.ScanSource.FLATBED
    mode = MODE_FROM_PB.get(r.color_mode, sc.ColorMode.COLOR) if r.color_mode else sc.ColorMode.COLOR
    if r.source and r.source not in SOURCE_FROM_PB:
        raise InvalidRequestError("unknown scan source")
    if r.color_mode and r.color_mode not in MODE_FROM_PB:
        raise InvalidRequestError("unknown colour mode")
    page_format = sc.PageFormat.PNG if r.page_format == spb.PAGE_IMAGE_FORMAT_PNG else sc.PageFormat.JPEG
    return sc.ScanSettings(source=source, resolution=r.resolution or 300, color_mode=mode,
                           width_mm=r.width_mm or 210.0, height_mm=r.height_mm or 297.0, page_format=page_format)


# -- printers ------------------------------------------------------------------------------------

def printer_capabilities_pb(c: PrinterCapabilities) -> ppb.PrinterCapabilities:
    return ppb.PrinterCapabilities(document_formats=list(c.document_formats), color=c.color, duplex=c.duplex,
                                   media=list(c.media), max_copies=c.max_copies)


def printer_status_pb(s: PrinterStatus) -> ppb.PrinterStatus:
    return ppb.PrinterStatus(state=PRINTER_STATE_TO_PB[s.state], conditions=[condition_pb(c) for c in s.conditions],
                             supplies=[supply_pb(x) for x in s.supplies], message=s.message)
