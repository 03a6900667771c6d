"""The holder's personal data from DG1 (the MRZ) and, for a CCCD, DG13: which field comes
from where, and the ``data`` verdict.

DG13 carries the full Vietnamese text; the MRZ only an upper-case, unaccented, truncated
name, the dates and the document number. A field takes DG13's value when DG13 holds it and
the MRZ's otherwise, and says which (:class:`~agent.domain.idcard.FieldSource`). A DG13
that is listed but missing, cannot be parsed, yields no name or has fields that do not
decode makes the ``data`` verdict INVALID with the reason: the read still carries what DG1
gives, but never as a quiet fallback.
"""

from __future__ import annotations

import datetime as dt
from typing import TypeVar

from agent.domain.idcard import ExtraField, FieldSource, PersonalData, Verdict
from agent.drivers.idcard.dg13 import Dg13
from agent.drivers.idcard.mrz import Mrz, parse_yymmdd
from agent.drivers.idcard.verification import CheckResult

T = TypeVar("T", str, dt.date | None)
#: PersonalData field -> Mrz attribute, where the names differ.
_MRZ_NAMES = {"document_type": "document_code", "mrz": "text"}

_DG1_ONLY = ("document_type", "issuing_state", "document_number", "nationality", "mrz")


def _mrz_id_number(mrz: Mrz) -> str:
    digits = "".join(ch for ch in mrz.optional_data if ch.isdigit())
    if mrz.format == "TD1" and len(digits) >= 12:
        return digits[:12]
    if mrz.format == "TD3":
        return mrz.optional_data
    return ""


class _Merge:
    """Picks each field's value and records its source."""

    def __init__(self, dg13: Dg13 | None) -> None:
        self.dg13 = dg13
        self.sources: dict[str, FieldSource] = {}

    def both(self, name: str, own: T, from_mrz: T, empty: T) -> T:
        """A field both hold: DG13's when it gives one, else the MRZ's."""
        if own:
            self.sources[name] = FieldSource.DG13
            return own
        self.sources[name] = FieldSource.DG1 if from_mrz else FieldSource.MISSING
        return from_mrz if from_mrz else empty

    def dg13_text(self, name: str, index: int, own: str) -> str:
        """A text only DG13 holds: DG13's when the card carries the index, even empty (no spouse)."""
        held = self.dg13 is not None and index in self.dg13.present
        self.sources[name] = FieldSource.DG13 if held else FieldSource.MISSING
        return own if held else ""

    def dg13_date(self, name: str, own: dt.date | None) -> dt.date | None:
        """A date only DG13 holds: DG13's when it decoded."""
        self.sources[name] = FieldSource.DG13 if own is not None else FieldSource.MISSING
        return own


def personal_data(mrz: Mrz, dg13: Dg13 | None) -> PersonalData:
    """Merge DG1 and DG13 (None: no DG13, or one that could not be parsed)."""
    d = dg13 if dg13 is not None else Dg13()
    m = _Merge(dg13)
    for name in _DG1_ONLY:
        m.sources[name] = FieldSource.DG1 if getattr(mrz, _MRZ_NAMES.get(name, name)) else FieldSource.MISSING
    return PersonalData(
        document_type=mrz.document_code, issuing_state=mrz.issuing_state, document_number=mrz.document_number,
        nationality=mrz.nationality, mrz=mrz.text,
        id_number=m.both("id_number", d.id_number, _mrz_id_number(mrz), ""),
        full_name=m.both("full_name", d.full_name, mrz.full_name, ""),
        date_of_birth=m.both("date_of_birth", d.date_of_birth, parse_yymmdd(mrz.date_of_birth, future=False),
                             None),
        sex=m.both("sex", d.sex, {"M": "M", "F": "F"}.get(mrz.sex, "X"), ""),
        date_of_expiry=m.both("date_of_expiry", d.date_of_expiry,
                              parse_yymmdd(mrz.date_of_expiry, future=True), None),
        date_of_issue=m.dg13_date("date_of_issue", d.date_of_issue),
        nationality_name=m.dg13_text("nationality_name", 5, d.nationality),
        ethnicity=m.dg13_text("ethnicity", 6, d.ethnicity),
        religion=m.dg13_text("religion", 7, d.religion),
        place_of_origin=m.dg13_text("place_of_origin", 8, d.place_of_origin),
        place_of_residence=m.dg13_text("place_of_residence", 9, d.place_of_residence),
        identifying_marks=m.dg13_text("identifying_marks", 10, d.identifying_marks),
        father_name=m.dg13_text("father_name", 13, d.father_name),
        mother_name=m.dg13_text("mother_name", 13, d.mother_name),
        spouse_name=m.dg13_text("spouse_name", 14, d.spouse_name),
        old_id_number=m.dg13_text("old_id_number", d.old_id_index, d.old_id_number),
        extra_fields=tuple(ExtraField(index, strings) for index, strings in d.extra),
        sources=m.sources,
    )


def data_verdict(listed: bool, dg13: Dg13 | None, failure: str | None) -> CheckResult:
    """Judge the decoding of DG13: ``listed`` (EF.COM names it), the parsed file (None when
    missing or unparseable) and ``failure``, a data-free reason it could not be parsed."""
    if not listed and dg13 is None and failure is None:
        return CheckResult(Verdict.NOT_SUPPORTED)
    if failure is not None:
        return CheckResult(Verdict.INVALID, [f"DG13 could not be parsed ({failure}); fields come from DG1"])
    if dg13 is None:
        return CheckResult(Verdict.INVALID, ["DG13 listed in EF.COM but not on the card; fields come from DG1"])
    details = list(dg13.problems)
    if not dg13.full_name:
        details.append("DG13 holds no name; the name comes from DG1")
    return CheckResult(Verdict.INVALID if details else Verdict.VALID, details)
