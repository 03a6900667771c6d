"""Enrolment and renewal against the gateway's enrolment port (server TLS only)."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import grpc
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from grpc import aio

from agent.errors import AgentError, ConfigError, ForbiddenError, InvalidRequestError, UnauthenticatedError
from agent.provisioning.identity import IdentityInfo, IdentityStore, MachineFacts, make_csr, new_key, renew_at
from centre.gateway.v1 import enrollment_pb2, enrollment_pb2_grpc

log = logging.getLogger(__name__)

_STATUS = {enrollment_pb2.ENROLMENT_STATUS_ACTIVE: "active", enrollment_pb2.ENROLMENT_STATUS_PENDING: "pending",
           enrollment_pb2.ENROLMENT_STATUS_REVOKED: "revoked"}


class GatewayUnreachableError(AgentError):
    default_reason = "GATEWAY_UNREACHABLE"


def _refusal(exc: grpc.RpcError, target: str) -> AgentError:
    code = exc.code() if hasattr(exc, "code") else None
    details = exc.details() if hasattr(exc, "details") else ""
    if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
        return GatewayUnreachableError(f"cannot reach the gateway at {target} ({details or code})")
    if code is grpc.StatusCode.UNAUTHENTICATED:
        return UnauthenticatedError(f"gateway refused: {details}")
    if code is grpc.StatusCode.PERMISSION_DENIED:
        return ForbiddenError(f"gateway refused: {details}")
    return InvalidRequestError(f"gateway refused ({code.name if code else '?'}): {details}")


def _roots(ca_file: str) -> bytes | None:
    if not ca_file:
        return None
    try:
        return Path(ca_file).read_bytes()
    except OSError as exc:
        raise ConfigError(f"{ca_file}: cannot read the CA file ({exc.strerror})") from None


@dataclass(frozen=True, slots=True)
class EnrolOutcome:
    info: IdentityInfo
    already: bool = False
    detail: str = ""


def enroll(store: IdentityStore, gateway: str, token: str, facts: MachineFacts, *, ca_file: str = "",
           expected_centre: str = "", version: str = "", timeout: float = 15.0) -> EnrolOutcome:
    """Enrol this PC. Idempotent: a current identity is kept and reported as such."""
    if store.present:
        problem = store.check()
        if not problem:
            fixed = store.give_to_service()
            detail = f"handed {', '.join(fixed)} back to the service user" if fixed else ""
            info = store.info()
            if not store.has_attestation_certificate() and info.status == "active":
                # enrolled by a version without attestation certificates: get one now (else at renewal)
                try:
                    info = renew_sync(store, timeout=timeout)
                except AgentError as exc:
                    log.warning("no attestation certificate yet (%s); it comes with the next renewal", exc.message)
                if store.has_attestation_certificate():
                    detail = "; ".join(filter(None, (detail, "attestation certificate issued")))
            return EnrolOutcome(info, already=True, detail=detail)
        if problem == "certificate expired":
            try:
                return EnrolOutcome(renew_sync(store, timeout=timeout), detail="expired certificate renewed")
            except (UnauthenticatedError, ForbiddenError) as exc:
                log.warning("renewal refused (%s); enrolling again", exc.message)
    key = new_key()
    attestation_key, new_attestation_key = store.attestation_key()
    request = enrollment_pb2.EnrollRequest(
        token=token, csr_der=make_csr(key, facts), expected_centre=expected_centre, agent_version=version,
        attestation_csr_der=make_csr(attestation_key, facts),
        machine=enrollment_pb2.MachineIdentity(machine_id=facts.machine_id, hostname=facts.hostname,
                                               serial=facts.serial))
    credentials = grpc.ssl_channel_credentials(root_certificates=_roots(ca_file))
    try:
        with grpc.secure_channel(gateway, credentials) as channel:
            reply = enrollment_pb2_grpc.EnrollmentStub(channel).Enroll(request, timeout=timeout)
    except grpc.RpcError as exc:
        raise _refusal(exc, gateway) from None
    issued = reply.identity
    info = IdentityInfo(issued.agent_id, issued.centre, issued.province, issued.report_endpoint, gateway,
                        _STATUS.get(issued.status, "unknown"))
    store.install(key, issued.certificate_pem, issued.ca_chain_pem, info, issued.attestation_certificate_pem)
    if new_attestation_key:
        store.keep_attestation_key(attestation_key)
    return EnrolOutcome(info)


def renew_request(store: IdentityStore, now_ms: int) -> enrollment_pb2.RenewRequest:
    """Renew the client certificate and, with it, the attestation key's (same key, new certificate)."""
    key = store.key()
    facts = MachineFacts("renewal", "", "")
    csr = make_csr(key, facts)
    attestation_key, new_attestation_key = store.attestation_key()
    if new_attestation_key:
        store.keep_attestation_key(attestation_key)
    attestation_csr = make_csr(attestation_key, facts)
    message = b"centre-renew\0" + csr + str(now_ms).encode() + b"\0" + attestation_csr
    return enrollment_pb2.RenewRequest(certificate_pem=store.cert_pem(), csr_der=csr, timestamp_ms=now_ms,
                                       signature=key.sign(message, ec.ECDSA(hashes.SHA256())),
                                       attestation_csr_der=attestation_csr)


def _apply(store: IdentityStore, reply: enrollment_pb2.RenewResponse) -> IdentityInfo:
    old = store.info()
    issued = reply.identity
    info = IdentityInfo(issued.agent_id, issued.centre, issued.province, issued.report_endpoint or old.report_endpoint,
                        old.enroll_endpoint, _STATUS.get(issued.status, "unknown"))
    store.replace_certificate(issued.certificate_pem, issued.ca_chain_pem, info, issued.attestation_certificate_pem)
    return info


def renew_sync(store: IdentityStore, *, timeout: float = 15.0) -> IdentityInfo:
    info = store.info()
    request = renew_request(store, int(time.time() * 1000))
    credentials = grpc.ssl_channel_credentials(root_certificates=store.ca_pem())
    try:
        with grpc.secure_channel(info.enroll_endpoint, credentials) as channel:
            reply = enrollment_pb2_grpc.EnrollmentStub(channel).Renew(request, timeout=timeout)
    except grpc.RpcError as exc:
        raise _refusal(exc, info.enroll_endpoint) from None
    return _apply(store, reply)


async def renew(store: IdentityStore, *, timeout: float = 15.0) -> IdentityInfo:
    info = store.info()
    request = renew_request(store, int(time.time() * 1000))
    credentials = grpc.ssl_channel_credentials(root_certificates=store.ca_pem())
    try:
        async with aio.secure_channel(info.enroll_endpoint, credentials) as channel:
            reply = await enrollment_pb2_grpc.EnrollmentStub(channel).Renew(request, timeout=timeout)
    except aio.AioRpcError as exc:
        raise _refusal(exc, info.enroll_endpoint) from None
    return _apply(store, reply)


class CertificateRenewer:
    """Renews the client certificate at half its lifetime; retries with backoff; survives
    a long power-off (an expired certificate still renews within the gateway's grace window).
    The attestation certificate is renewed with it. A PC without one (enrolled while pending, the
    gateway issues it only to approved PCs, or by an older version) renews every
    ``attestation_retry`` seconds until it has one."""

    def __init__(self, store: IdentityStore, *, retry_min: float = 30.0, retry_max: float = 3600.0,
                 check_max: float = 3600.0, attestation_retry: float = 3600.0) -> None:
        self._store = store
        self._retry = (retry_min, retry_max)
        self._check_max = check_max
        self._attestation_retry = attestation_retry
        self._attestation_asked: float | None = None  # time.monotonic() of the last renewal for it
        self.renewed = asyncio.Event()
        self.failures = 0

    def due_in(self, now: dt.datetime | None = None) -> float:
        cert = self._store.certificate()
        now = now or dt.datetime.now(dt.UTC)
        wait = max(0.0, (renew_at(cert) - now).total_seconds())
        if not self._store.has_attestation_certificate():
            asked = self._attestation_asked
            wait = min(wait, 0.0 if asked is None else max(0.0, asked + self._attestation_retry - time.monotonic()))
        return wait

    async def run(self) -> None:
        delay = self._retry[0]
        while True:
            wait = self.due_in()
            if wait > 0:
                await asyncio.sleep(min(wait, self._check_max))
                continue
            try:
                self._attestation_asked = time.monotonic()
                info = await renew(self._store)
                log.info("client certificate renewed for %s", info.agent_id)
                self.renewed.set()
                self.failures = 0
                delay = self._retry[0]
            except AgentError as exc:
                self.failures += 1
                log.warning("certificate renewal failed: %s; retrying in %.0f s", exc.message, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._retry[1])
            except OSError as exc:
                self.failures += 1
                log.warning("certificate renewal failed: %s", type(exc).__name__)
                await asyncio.sleep(delay)
