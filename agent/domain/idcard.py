"""Chip ID cards (ICAO 9303 eMRTD; Vietnamese CCCD): access keys, read results, verdicts."""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class MrzKey:
    """BAC/PACE key material from the MRZ: document number, birth and expiry dates as YYMMDD."""

    document_number: str
    date_of_birth: str
    date_of_expiry: str

    def __repr__(self) -> str:  # never print key material
        return "MrzKey(<redacted>)"


@dataclass(frozen=True, slots=True)
class CanKey:
    """PACE key from the 6-digit Card Access Number printed on the card."""

    can: str

    def __repr__(self) -> str:
        return "CanKey(<redacted>)"


@dataclass(frozen=True, slots=True)
class QrKey:
    """MRZ keys derived from the QR code on a CCCD's face (``drivers/idcard/qr_key.py``): the
    law fixes the expiry date from birth and issue dates, and where the card's MRZ may carry
    one of two values, both are here, in the order to try them (at most two)."""

    candidates: tuple[MrzKey, ...]

    def __repr__(self) -> str:
        return f"QrKey(<{len(self.candidates)} redacted>)"


AccessKey = MrzKey | CanKey | QrKey


class Verdict(enum.StrEnum):
    """Result of one authenticity check."""

    VALID = "valid"
    INVALID = "invalid"
    NOT_SUPPORTED = "not_supported"
    UNKNOWN_ISSUER = "unknown_issuer"


@dataclass(frozen=True, slots=True)
class Verification:
    """Each check reports on its own; an invalid card is still read and reported.

    ``data`` judges the decoding of the personal data, not the card's authenticity: VALID
    when every personal-data group read was decoded whole; INVALID when a DG13 is listed but
    missing, cannot be parsed, yields no name or has fields that do not decode (the read
    still carries what DG1 gives; ``details`` says why, prefixed "data: "); NOT_SUPPORTED
    when the document has no DG13 (a passport: the MRZ is all there is).
    """

    passive: Verdict
    active: Verdict
    chip: Verdict
    details: tuple[str, ...] = ()  # non-personal notes: "DG2 hash mismatch", "DS cert expired"
    data: Verdict = Verdict.NOT_SUPPORTED


class FieldSource(enum.StrEnum):
    """Where a personal-data field's value came from."""

    DG13 = "dg13"  # the CCCD's DG13 (full Vietnamese text)
    DG1 = "dg1"  # the MRZ (upper case, no diacritics, truncated names)
    MISSING = "missing"  # neither holds it: the field is empty


@dataclass(frozen=True, slots=True)
class ExtraField:
    """A DG13 pair this agent does not map to a named field, kept as the card holds it."""

    index: int
    values: tuple[str, ...]

    def __repr__(self) -> str:
        return f"ExtraField({self.index}, <redacted>)"


@dataclass(frozen=True, slots=True)
class FaceImage:
    """The holder's face from DG2. ``jpeg`` is always JPEG (JPEG 2000 is converted)."""

    jpeg: bytes
    original_mime_type: str  # "image/jpeg" or "image/jp2"
    width: int = 0
    height: int = 0

    def __repr__(self) -> str:
        return f"FaceImage(<{len(self.jpeg)} bytes redacted>)"


@dataclass(frozen=True, slots=True)
class PersonalData:
    """Holder data from DG1 (MRZ) and, for a CCCD, DG13. Dates are ISO ``datetime.date``."""

    document_type: str
    issuing_state: str
    document_number: str
    id_number: str  # the 12-digit CCCD number (DG13 field 1); for a passport, the optional data
    full_name: str
    date_of_birth: dt.date | None
    sex: str  # "M", "F" or "X"
    nationality: str
    date_of_expiry: dt.date | None
    date_of_issue: dt.date | None = None
    ethnicity: str = ""
    religion: str = ""
    place_of_origin: str = ""
    place_of_residence: str = ""
    identifying_marks: str = ""
    father_name: str = ""
    mother_name: str = ""
    spouse_name: str = ""
    old_id_number: str = ""
    mrz: str = ""
    nationality_name: str = ""  # CCCD DG13 field 5 as printed ("Việt Nam"); nationality is the MRZ code
    extra_fields: tuple[ExtraField, ...] = ()
    #: Per field name (as above): where its value came from. Fields not listed are MISSING.
    sources: Mapping[str, FieldSource] = field(default_factory=dict)

    def __repr__(self) -> str:
        return "PersonalData(<redacted>)"


@dataclass(frozen=True, slots=True)
class CardRead:
    """Everything read from one card. Held in memory only, never logged or stored."""

    personal: PersonalData
    face: FaceImage | None
    verification: Verification
    data_groups_read: tuple[int, ...]
    access_protocol: str  # "BAC" or "PACE"
    apdu_count: int = 0
    raw_data_groups: dict[int, bytes] = field(default_factory=dict)

    def __repr__(self) -> str:
        return f"CardRead(<redacted>, dgs={self.data_groups_read}, protocol={self.access_protocol})"


@dataclass(frozen=True, slots=True)
class ReadOptions:
    """What to read. ``include_face`` false skips DG2 (the largest file)."""

    include_face: bool = True
    include_raw: bool = False
    active_authentication: bool = True
    chip_authentication: bool = True
    challenge: bytes = b""  # portal nonce, bound into the signed result by the API layer


@dataclass(frozen=True, slots=True)
class CardQrData:
    """Fields in the QR code printed on a CCCD face (read by a barcode scanner)."""

    id_number: str
    old_id_number: str
    full_name: str
    date_of_birth: dt.date | None
    sex: str
    place_of_residence: str
    date_of_issue: dt.date | None

    def __repr__(self) -> str:
        return "CardQrData(<redacted>)"
