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

from agent.domain.idcard import ExtraField, FieldSource, PersonalData, Verdict
from agent.drivers.idcard.dg13 import Dg13
from agent.drivers.idcard.mrz import Mrz, parse_yymmdd
from agent.drivers.idcard.verification import CheckResult

#: Fields that only DG13 holds, with the DG13 index each comes from (0: chosen per card).
_DG13_ONLY = {
    "nationality_name": 5, "ethnicity": 6, "religion": 7, "place_of_origin": 8, "place_of_residence": 9,
    "identifying_marks": 10, "date_of_issue": 11, "father_name": 13, "mother_name": 13, "spouse_name": 14,
    "old_id_number": 0,
}
#: Fields both hold: DG13 first, the MRZ when DG13 gives nothing.
_BOTH = ("id_number", "full_name", "date_of_birth", "sex", "date_of_expiry")
#: Fields only the MRZ holds.
_DG1_ONLY = ("document_type", "issuing_state", "document_number", "nationality", "mrz")

Value = str | dt.date | None


def _mrz_id_number(mrz: Mrz) -> str:
    digits = "".join(ch for ch in mrz.optional_data if ch.isdigit())
    if mrz.format == "TD1" and len(digits) >= 12:
        return digits[:12]
    if mrz.format == "TD3":
        return mrz.optional_data
    return ""


def personal_data(mrz: Mrz, dg13: Dg13 | None) -> PersonalData:
    """Merge DG1 and DG13 (None: no DG13, or one that could not be parsed)."""
    from_mrz: dict[str, Value] = {
        "document_type": mrz.document_code, "issuing_state": mrz.issuing_state,
        "document_number": mrz.document_number, "nationality": mrz.nationality, "mrz": mrz.text,
        "id_number": _mrz_id_number(mrz), "full_name": mrz.full_name,
        "date_of_birth": parse_yymmdd(mrz.date_of_birth, future=False),
        "sex": {"M": "M", "F": "F"}.get(mrz.sex, "X"),
        "date_of_expiry": parse_yymmdd(mrz.date_of_expiry, future=True),
    }
    values: dict[str, Value] = {}
    sources: dict[str, FieldSource] = {}
    for name in _DG1_ONLY:
        values[name] = from_mrz[name]
        sources[name] = FieldSource.DG1 if from_mrz[name] else FieldSource.MISSING
    for name in _BOTH:
        own: Value = getattr(dg13, name) if dg13 is not None else None
        if own:
            values[name], sources[name] = own, FieldSource.DG13
        elif from_mrz[name]:
            values[name], sources[name] = from_mrz[name], FieldSource.DG1
        else:
            values[name], sources[name] = None if name.startswith("date_") else "", FieldSource.MISSING
    for name, index in _DG13_ONLY.items():
        own = getattr(dg13, "nationality" if name == "nationality_name" else name) if dg13 is not None else None
        if dg13 is not None and index == 0:
            index = dg13.old_id_index
        # A string field the card carries is DG13's even when empty (no spouse, no religion);
        # a date is DG13's only when it decoded.
        held = dg13 is not None and index in dg13.present and (own is not None)
        values[name] = own if held else (None if name.startswith("date_") else "")
        sources[name] = FieldSource.DG13 if held else FieldSource.MISSING
    extra = tuple(ExtraField(index, strings) for index, strings in dg13.extra) if dg13 is not None else ()
    return PersonalData(**values, extra_fields=extra, sources=sources)  # type: ignore[arg-type]


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
