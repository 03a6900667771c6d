"""Merging DG1 and DG13: each field's source, and the data verdict (never a quiet fallback)."""

from __future__ import annotations

import datetime as dt

from agent.domain.idcard import ExtraField, FieldSource, Verdict
from agent.drivers.idcard import mrz
from agent.drivers.idcard.dg13 import build_dg13, parse_dg13
from agent.drivers.idcard.holder import data_verdict, personal_data
from agent.simulator.emrtd import sample_cccd

MRZ = mrz.parse(sample_cccd().mrz)


def test_dg13_without_a_name_falls_back_to_the_mrz_and_says_so() -> None:
    dg13 = parse_dg13(build_dg13({1: "001199012345", 2: "", 9: "Số 1", 12: "Không thời hạn", 14: "", 41: "?"}))
    p = personal_data(MRZ, dg13)
    assert p.full_name == "TRAN THI THU NGHIEM"
    assert p.sources["full_name"] is FieldSource.DG1
    assert p.sources["id_number"] is FieldSource.DG13
    assert (p.place_of_residence, p.sources["place_of_residence"]) == ("Số 1", FieldSource.DG13)
    assert p.sources["spouse_name"] is FieldSource.DG13  # the card says: no spouse
    assert p.sources["religion"] is FieldSource.MISSING
    assert p.sources["date_of_issue"] is FieldSource.MISSING
    # a permanent card's DG13 has no expiry date; the MRZ's is used, and named
    assert (p.date_of_expiry, p.sources["date_of_expiry"]) == (dt.date(2039, 3, 15), FieldSource.DG1)
    assert p.extra_fields == (ExtraField(41, ("?",)),)
    verdict = data_verdict(True, dg13, None)
    assert verdict.verdict is Verdict.INVALID
    assert verdict.details == ["DG13 holds no name; the name comes from DG1"]


def test_data_verdicts() -> None:
    whole = parse_dg13(build_dg13({2: "Tên"}))
    assert data_verdict(True, whole, None).verdict is Verdict.VALID
    assert data_verdict(False, None, None).verdict is Verdict.NOT_SUPPORTED
    missing = data_verdict(True, None, None)
    assert (missing.verdict, missing.details) == (
        Verdict.INVALID, ["DG13 listed in EF.COM but not on the card; fields come from DG1"])
    broken = data_verdict(True, None, "TLV truncated: tag missing")
    assert (broken.verdict, broken.details) == (
        Verdict.INVALID, ["DG13 could not be parsed (TLV truncated: tag missing); fields come from DG1"])
    bad_date = data_verdict(True, parse_dg13(build_dg13({2: "Tên", 3: "1990-01-15"})), None)
    assert (bad_date.verdict, bad_date.details) == (
        Verdict.INVALID, ["DG13 field 3 (date of birth) is not a dd/mm/yyyy date"])


def test_without_dg13_every_field_is_dg1_or_missing() -> None:
    p = personal_data(MRZ, None)
    assert set(p.sources.values()) <= {FieldSource.DG1, FieldSource.MISSING}
    assert p.sources["full_name"] is FieldSource.DG1
    assert p.sources["place_of_residence"] is FieldSource.MISSING
    assert p.place_of_residence == ""
