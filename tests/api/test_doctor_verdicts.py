"""How the doctor judges a test card's read: only a VALID passive verdict passes."""

from __future__ import annotations

from agent.doctor.card_check import explain_passive
from agent.doctor.checks import Outcome
from centre.agent.v1 import idcard_pb2 as ipb


def read(verdict: ipb.Verdict.ValueType, *details: str) -> ipb.ReadCardResponse:
    return ipb.ReadCardResponse(access_protocol="BAC", data_groups_read=[1, 2],
                                verification=ipb.Verification(passive=verdict, details=list(details)))


def test_valid_passes() -> None:
    assert explain_passive(read(ipb.VERDICT_VALID, "chip: no DG14"), "/etc/csca") == \
        (Outcome.PASS, "BAC, DGs [1, 2], passive valid")


def test_invalid_fails_with_the_passive_reasons_only() -> None:
    outcome, detail = explain_passive(read(ipb.VERDICT_INVALID, "passive: DG2 hash mismatch", "chip: no DG14",
                                           "passive: DS certificate outside its validity period"), "/etc/csca")
    assert outcome is Outcome.FAIL
    assert detail == "BAC, DGs [1, 2], passive invalid: DG2 hash mismatch; DS certificate outside its validity period"


def test_not_supported_fails_too() -> None:
    outcome, detail = explain_passive(read(ipb.VERDICT_NOT_SUPPORTED,
                                           "passive: EF.SOD uses an algorithm this agent does not support"), "")
    assert outcome is Outcome.FAIL
    assert detail.endswith("passive not_supported: EF.SOD uses an algorithm this agent does not support")


def test_unknown_issuer_without_a_csca_dir_says_where_the_package_keeps_them() -> None:
    outcome, detail = explain_passive(read(ipb.VERDICT_UNKNOWN_ISSUER, "passive: no CSCA in the trust store for "
                                           "the DS issuer CN=CSCA Example,O=Ministry,C=VN"), "")
    assert outcome is Outcome.FAIL
    assert "Install the CSCA certificate of CN=CSCA Example,O=Ministry,C=VN (country VN)" in detail
    assert "in a directory set as [idcard] csca_dir (the package uses /etc/centre-agent/csca)" in detail
