"""The QR code printed on a Vietnamese chip ID card (CCCD).

Its text is ``|``-separated: 12-digit ID number, old 9-digit ID number (may be empty),
full name, date of birth (DDMMYYYY), sex, address of residence, date of issue
(DDMMYYYY). Cards issued from 2024 may append further fields; they are kept, unnamed.
"""

from __future__ import annotations

import datetime
import re

from agent.domain.barcode import CccdQrPayload

_ID = re.compile(r"\d{12}")
_OLD_ID = re.compile(r"(\d{9})?")


def _date(text: str) -> str:
    if not re.fullmatch(r"\d{8}", text):
        raise ValueError("not a DDMMYYYY date")
    return datetime.date(int(text[4:]), int(text[2:4]), int(text[:2])).isoformat()


def parse_cccd_qr(text: str) -> CccdQrPayload | None:
    """The structured fields, or ``None`` when ``text`` is not a CCCD QR payload."""
    fields = text.strip().split("|")
    if len(fields) < 7:
        return None
    id_number, old_id, name, birth, sex, address, issued = fields[:7]
    if not _ID.fullmatch(id_number) or not _OLD_ID.fullmatch(old_id) or not name.strip():
        return None
    try:
        birth_iso, issued_iso = _date(birth), _date(issued)
    except ValueError:
        return None
    return CccdQrPayload(
        id_number=id_number, old_id_number=old_id, full_name=name.strip(), date_of_birth=birth_iso,
        sex=sex.strip(), address=address.strip(), issue_date=issued_iso, extra=tuple(fields[7:]),
    )
