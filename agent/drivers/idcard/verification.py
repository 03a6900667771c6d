"""Passive authentication (ICAO 9303 Part 11, 5.1): the SOD signature by the Document
Signer, the DS certificate chained to a CSCA of the trust store, validity periods and the
hash of every data group read. Problems become a verdict with data-free details; a bad
card never raises here."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
from dataclasses import dataclass, field

from agent.domain.idcard import Verdict
from agent.drivers.idcard.certificates import Certificate
from agent.drivers.idcard.signatures import signed_content_verifies
from agent.drivers.idcard.sod import Sod, parse_sod
from agent.drivers.idcard.trust_store import TrustStore
from agent.errors import DataFormatError, NotSupportedError


@dataclass(slots=True)
class CheckResult:
    verdict: Verdict
    details: list[str] = field(default_factory=list)


def check_data_group_hashes(sod: Sod, data_groups: dict[int, bytes]) -> list[str]:
    """Names of data groups whose hash is missing from the SOD or does not match."""
    problems = []
    for number in sorted(data_groups):
        expected = sod.data_group_hashes.get(number)
        if expected is None:
            problems.append(f"DG{number} is not listed in EF.SOD")
            continue
        actual = hashlib.new(sod.hash_algorithm, data_groups[number]).digest()
        if not hmac.compare_digest(actual, expected):
            problems.append(f"DG{number} hash mismatch")
    return problems


def passive_authentication(sod_data: bytes | None, data_groups: dict[int, bytes], trust: TrustStore | None,
                           now: dt.datetime | None = None) -> CheckResult:
    """Check EF.SOD against the data groups read and the trust store. Never raises for a bad card."""
    try:
        return _passive_authentication(sod_data, data_groups, trust, now or dt.datetime.now(dt.UTC))
    except NotSupportedError:
        return CheckResult(Verdict.NOT_SUPPORTED, ["EF.SOD uses an algorithm this agent does not support"])
    except Exception:  # lazily parsed ASN.1 deep in the SOD may fail in any way asn1crypto likes
        return CheckResult(Verdict.INVALID, ["EF.SOD malformed"])


def _passive_authentication(sod_data: bytes | None, data_groups: dict[int, bytes], trust: TrustStore | None,
                            now: dt.datetime) -> CheckResult:
    if sod_data is None:
        return CheckResult(Verdict.INVALID, ["EF.SOD missing"])
    try:
        sod = parse_sod(sod_data)
    except DataFormatError:
        return CheckResult(Verdict.INVALID, ["EF.SOD malformed"])
    details = check_data_group_hashes(sod, data_groups)
    if sod.ds_certificate is None:
        return CheckResult(Verdict.INVALID, [*details, "EF.SOD carries no DS certificate"])
    try:
        ds = Certificate.load(sod.ds_certificate.dump())
    except DataFormatError:
        return CheckResult(Verdict.INVALID, [*details, "DS certificate malformed"])
    try:
        signature_ok = signed_content_verifies(sod.signer_info, sod.ds_certificate, sod.encapsulated_content)
    except DataFormatError:
        signature_ok = False
    if not signature_ok:
        details.append("EF.SOD signature invalid")
    if not ds.valid_at(now):
        details.append("DS certificate outside its validity period")
    if details:
        return CheckResult(Verdict.INVALID, details)
    candidates = trust.issuers_of(ds) if trust is not None else []
    if not candidates:
        return CheckResult(Verdict.UNKNOWN_ISSUER, ["no CSCA in the trust store for the DS issuer"])
    for csca in candidates:
        if ds.issued_by(csca):
            if not csca.valid_at(now):
                return CheckResult(Verdict.INVALID, ["CSCA certificate outside its validity period"])
            return CheckResult(Verdict.VALID)
    return CheckResult(Verdict.INVALID, ["DS certificate signature does not verify with the CSCA"])
