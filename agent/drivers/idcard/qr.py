"""The QR code on the face of a CCCD: ``id|old_id|name|ddmmyyyy dob|sex|address|ddmmyyyy issue``.

Some batches append further fields after the seventh; they are ignored.
"""

from __future__ import annotations

import datetime as dt
import re

from agent.domain.idcard import CardQrData
from agent.drivers.idcard.dg13 import parse_sex
from agent.errors import DataFormatError

_MAX_PAYLOAD = 2048


def _date(value: str, what: str) -> dt.date | None:
    if not value:
        return None
    if not re.fullmatch(r"\d{8}", value):
        raise DataFormatError(f"CCCD QR {what} is not ddmmyyyy")
    try:
        return dt.date(int(value[4:]), int(value[2:4]), int(value[:2]))
    except ValueError as exc:
        raise DataFormatError(f"CCCD QR {what} is not a calendar date") from exc


def is_cccd_qr(payload: str | bytes) -> bool:
    """Whether ``payload`` parses as the QR code on a CCCD's face."""
    try:
        parse_cccd_qr(payload)
    except DataFormatError:
        return False
    return True


def parse_cccd_qr(payload: str | bytes) -> CardQrData:
    if isinstance(payload, bytes):
        try:
            payload = payload.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DataFormatError("CCCD QR payload is not UTF-8") from exc
    if len(payload) > _MAX_PAYLOAD:
        raise DataFormatError("CCCD QR payload is too long")
    fields = payload.strip().split("|")
    if len(fields) < 7:
        raise DataFormatError("CCCD QR payload has fewer than 7 fields")
    id_number, old_id, name, dob, sex, address, issued = (f.strip() for f in fields[:7])
    if not re.fullmatch(r"\d{12}", id_number):
        raise DataFormatError("CCCD QR id number is not 12 digits")
    if old_id and not re.fullmatch(r"\d{9}|\d{12}", old_id):
        raise DataFormatError("CCCD QR old id number is not 9 or 12 digits")
    if not name:
        raise DataFormatError("CCCD QR name is empty")
    return CardQrData(id_number, old_id, name, _date(dob, "birth date"), parse_sex(sex) if sex else "",
                      address, _date(issued, "issue date"))
