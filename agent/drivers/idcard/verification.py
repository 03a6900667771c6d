"""Passive authentication (ICAO 9303 Part 11, 5.1): the SOD signature by the Document
Signer, the DS certificate chained to a CSCA of the trust store, validity periods and the
hash of every data group read. Problems become a verdict with data-free details; a bad
card never raises here."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass, field

from agent.domain.idcard import Verdict
from agent.drivers.idcard.certificates import Certificate, load_certificate_cached
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


@dataclass(slots=True)
class SodCheck:
    """Everything passive authentication judges without the data groups: EF.SOD parsed, its
    signature, the DS certificate and its chain to the trust store. Made by :func:`check_sod`
    (which can run while the data groups are still being read), finished by
    :func:`passive_verdict`."""

    sod: Sod | None = None
    #: A verdict that stands whatever the data groups are (no or unreadable EF.SOD).
    final: CheckResult | None = None
    #: Problems of the signature and the DS certificate, reported after the hash problems.
    signer_details: list[str] = field(default_factory=list)
    #: The chain verdict, used when neither the hashes nor the signer show a problem.
    chain: CheckResult | None = None


def _guarded(check: Callable[[], CheckResult]) -> CheckResult:
    """A bad card never raises here: unsupported algorithms and malformed ASN.1 become verdicts."""
    try:
        return check()
    except NotSupportedError:
        return CheckResult(Verdict.NOT_SUPPORTED, ["EF.SOD uses an algorithm this agent does not support"])
    except Exception:  # lazily parsed ASN.1 deep in the SOD may fail in any way asn1crypto likes
        return CheckResult(Verdict.INVALID, ["EF.SOD malformed"])


def check_sod(sod_data: bytes | None, trust: TrustStore | None, now: dt.datetime | None = None) -> SodCheck:
    """The data-group-independent part of passive authentication. Never raises for a bad card."""
    when = now or dt.datetime.now(dt.UTC)
    outcome = SodCheck()

    def signer() -> CheckResult:
        if sod_data is None:
            return CheckResult(Verdict.INVALID, ["EF.SOD missing"])
        try:
            sod = parse_sod(sod_data)
        except DataFormatError:
            return CheckResult(Verdict.INVALID, ["EF.SOD malformed"])
        outcome.sod = sod
        if sod.ds_certificate is None:
            outcome.signer_details = ["EF.SOD carries no DS certificate"]
            return CheckResult(Verdict.INVALID)
        try:
            ds = load_certificate_cached(sod.ds_certificate.dump())
        except DataFormatError:
            outcome.signer_details = ["DS certificate malformed"]
            return CheckResult(Verdict.INVALID)
        try:
            signature_ok = signed_content_verifies(sod.signer_info, sod.ds_certificate, sod.encapsulated_content,
                                                   key=ds.public_key())
        except DataFormatError:
            signature_ok = False
        if not signature_ok:
            outcome.signer_details.append("EF.SOD signature invalid")
        if not ds.valid_at(when):
            outcome.signer_details.append("DS certificate outside its validity period")
        if outcome.signer_details:
            return CheckResult(Verdict.INVALID)
        outcome.chain = _guarded(lambda: _chain(ds, trust, when))
        return CheckResult(Verdict.VALID)

    result = _guarded(signer)
    if outcome.sod is None or result.details:
        # No EF.SOD to hash against, or a verdict (malformed, unsupported) that stands alone.
        outcome.final = result
    return outcome


def _chain(ds: Certificate, trust: TrustStore | None, now: dt.datetime) -> CheckResult:
    named, csca = trust.find_issuer(ds) if trust is not None else (False, None)
    if not named:
        return CheckResult(Verdict.UNKNOWN_ISSUER, [f"no CSCA in the trust store for the DS issuer {ds.issuer_name()}"])
    if csca is None:
        return CheckResult(Verdict.INVALID, ["DS certificate signature does not verify with the CSCA"])
    if not csca.valid_at(now):
        return CheckResult(Verdict.INVALID, ["CSCA certificate outside its validity period"])
    revoked = trust.revocation_of(ds, csca) if trust is not None else None
    if revoked is not None:
        return CheckResult(Verdict.INVALID, [f"DS certificate {revoked} (CRL of {ds.issuer_name()})"])
    return CheckResult(Verdict.VALID)


def passive_verdict(check: SodCheck, data_groups: dict[int, bytes]) -> CheckResult:
    """Finish passive authentication with the data groups read. Never raises for a bad card."""
    if check.final is not None:
        return check.final
    sod = check.sod
    assert sod is not None  # check_sod sets final when there is no EF.SOD

    def finish() -> CheckResult:
        details = check_data_group_hashes(sod, data_groups) + check.signer_details
        if details:
            return CheckResult(Verdict.INVALID, details)
        assert check.chain is not None  # check_sod sets it whenever the signer shows no problem
        return check.chain

    return _guarded(finish)


def passive_authentication(sod_data: bytes | None, data_groups: dict[int, bytes], trust: TrustStore | None,
                           now: dt.datetime | None = None) -> CheckResult:
    """Check EF.SOD against the data groups read and the trust store. Never raises for a bad card."""
    return passive_verdict(check_sod(sod_data, trust, now), data_groups)
