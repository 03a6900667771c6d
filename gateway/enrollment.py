"""Enrolment, renewal and the mTLS identity check.

Two listening ports (see ``Gateway.start``):

- ``identity.enroll_listen``: server TLS only. ``Enrollment.Enroll`` (token + CSR) and
  ``Enrollment.Renew`` (current certificate, possibly expired within the grace window,
  plus a signature by its key), and the admin ``FleetQuery``.
- ``server.grpc_listen``: TLS with a REQUIRED client certificate issued by our CA
  (``require_client_auth=True``), so no unauthenticated caller reaches a reporting handler.
  :class:`CertificateAuthenticator` then takes the identity from the certificate and checks
  its serial and the agent's status against the :class:`AccessHolder` on every call.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import re
import time
from collections import OrderedDict
from collections.abc import Callable

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from grpc import aio

from agent.errors import ForbiddenError, InvalidRequestError, NotFoundError, UnauthenticatedError
from centre.gateway.v1 import enrollment_pb2, enrollment_pb2_grpc
from gateway.auth import CallerCredentials
from gateway.ca import CertIdentity, CertificateAuthority, identity_of, parse_csr, spki_fingerprint
from gateway.metrics import GatewayMetrics
from gateway.model import AgentRef
from gateway.service import _caller, _Guard
from gateway.store.identity import ACTIVE, PENDING, REVOKED, AccessList, Assigned, IdentityRegistry, IssuedCert, Machine
from gateway.store.trust import TrustRegistry
from gateway.trust import CRL, CSCA

log = logging.getLogger(__name__)

RENEW_CONTEXT = b"centre-renew\0"
RENEW_CLOCK_WINDOW_MS = 5 * 60 * 1000
_MACHINE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
_STATUS_PB = {ACTIVE: enrollment_pb2.ENROLMENT_STATUS_ACTIVE, PENDING: enrollment_pb2.ENROLMENT_STATUS_PENDING,
              REVOKED: enrollment_pb2.ENROLMENT_STATUS_REVOKED}


def renew_message(csr_der: bytes, timestamp_ms: int, attestation_csr_der: bytes = b"") -> bytes:
    """What a renewal signs; the attestation CSR, when sent, is covered too (older agents send none)."""
    message = RENEW_CONTEXT + csr_der + str(timestamp_ms).encode()
    return message + b"\0" + attestation_csr_der if attestation_csr_der else message


class AccessHolder:
    """The revocation list and agent statuses, refreshed from storage every few seconds
    (other replicas and the operator CLI write there) and updated at once by this process."""

    def __init__(self, registry: IdentityRegistry, refresh_seconds: float) -> None:
        self._registry = registry
        self._every = refresh_seconds
        self.current = AccessList(frozenset(), {})

    async def refresh(self) -> None:
        self.current = await self._registry.access_list()

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self._every)
            try:
                await self.refresh()
            except Exception as exc:  # storage hiccup: keep the last list, try again
                log.warning("refreshing the access list failed: %s", type(exc).__name__)

    def note(self, agent_id: str, status: str) -> None:
        self.current.status[agent_id] = status


class CertificateAuthenticator:
    """Agent identity from the verified client certificate; the claim in the request is ignored."""

    def __init__(self, access: AccessHolder) -> None:
        self._access = access
        self._parsed: OrderedDict[bytes, CertIdentity] = OrderedDict()

    def identity(self, caller: CallerCredentials) -> CertIdentity:
        pems = caller.auth_context().get("x509_pem_cert", ())
        if not pems:
            raise UnauthenticatedError("client certificate required (enrol this PC first)")
        pem = pems[0]
        ident = self._parsed.get(pem)
        if ident is None:
            try:
                ident = identity_of(x509.load_pem_x509_certificate(pem))
            except ValueError:
                raise UnauthenticatedError("unreadable client certificate") from None
            self._parsed[pem] = ident
            if len(self._parsed) > 4096:
                self._parsed.popitem(last=False)
        access = self._access.current
        if ident.serial in access.revoked_serials:
            raise ForbiddenError("certificate revoked")
        status = access.status.get(ident.agent_id)
        if status == PENDING:
            raise ForbiddenError("agent awaiting operator approval (centre-gateway approve)")
        if status != ACTIVE:
            raise ForbiddenError("agent revoked" if status == REVOKED else "agent not enrolled here")
        return ident

    def authenticate(self, caller: CallerCredentials, claimed: AgentRef) -> AgentRef:
        ident = self.identity(caller)
        return AgentRef(ident.agent_id, ident.province, ident.centre)


class Provisioner:
    """Enrolment and renewal decisions (transport-free, so tests can move the clock)."""

    def __init__(self, registry: IdentityRegistry, ca: CertificateAuthority, access: AccessHolder, *,
                 lifetime: dt.timedelta, grace: dt.timedelta, chain_pem: bytes, report_endpoint: str,
                 clock: Callable[[], float] = time.time) -> None:
        self.registry = registry
        self.ca = ca
        self.access = access
        self.lifetime = lifetime
        self.grace = grace
        self.chain_pem = chain_pem
        self.report_endpoint = report_endpoint
        self.clock = clock

    def _issuer(self, csr: x509.CertificateSigningRequest, now: dt.datetime,
                out: list[x509.Certificate]) -> Callable[[Assigned], IssuedCert]:
        def issue(assigned: Assigned) -> IssuedCert:
            cert = self.ca.sign_agent(csr, assigned.agent_id, assigned.centre, assigned.province, self.lifetime, now)
            out.append(cert)
            return IssuedCert(format(cert.serial_number, "x"), spki_fingerprint(cert.public_key()),
                              int(cert.not_valid_after_utc.timestamp() * 1000))
        return issue

    def _issued(self, assigned: Assigned, cert: x509.Certificate, now_ms: int,
                attestation_csr: x509.CertificateSigningRequest | None) -> enrollment_pb2.IssuedIdentity:
        from cryptography.hazmat.primitives import serialization
        self.access.note(assigned.agent_id, assigned.status)
        issued = enrollment_pb2.IssuedIdentity(
            agent_id=assigned.agent_id, centre=assigned.centre, province=assigned.province,
            certificate_pem=cert.public_bytes(serialization.Encoding.PEM), ca_chain_pem=self.chain_pem,
            report_endpoint=self.report_endpoint, status=_STATUS_PB[assigned.status], server_time_ms=now_ms)
        # Portals trust what this certificate signs, so only an approved (active) agent gets one; a
        # pending agent gets it at its first renewal after approval (the agent asks again then).
        if attestation_csr is not None and assigned.status == ACTIVE:
            att = self.ca.sign_attestation(attestation_csr, assigned.agent_id, assigned.centre, assigned.province,
                                           self.lifetime, dt.datetime.fromtimestamp(now_ms / 1000, dt.UTC))
            issued.attestation_certificate_pem = att.public_bytes(serialization.Encoding.PEM)
        return issued

    @staticmethod
    def _attestation_csr(der: bytes, identity_csr: x509.CertificateSigningRequest,
                         ) -> x509.CertificateSigningRequest | None:
        if not der:
            return None
        csr = parse_csr(der)
        if spki_fingerprint(csr.public_key()) == spki_fingerprint(identity_csr.public_key()):
            raise InvalidRequestError("attestation_csr_der: the attestation key must not be the identity key")
        return csr

    async def enroll(self, request: enrollment_pb2.EnrollRequest) -> enrollment_pb2.IssuedIdentity:
        if not request.token:
            raise UnauthenticatedError("token: missing")
        m = request.machine
        if not _MACHINE_ID.match(m.machine_id) or len(m.hostname) > 253 or len(m.serial) > 64:
            raise InvalidRequestError("machine: machine_id 1-64 of [A-Za-z0-9._:-], hostname <= 253, serial <= 64")
        csr = parse_csr(request.csr_der)
        attestation_csr = self._attestation_csr(request.attestation_csr_der, csr)
        now = dt.datetime.fromtimestamp(self.clock(), dt.UTC)
        now_ms = int(now.timestamp() * 1000)
        out: list[x509.Certificate] = []
        assigned, _ = await self.registry.enrol(
            request.token, Machine(m.machine_id, m.hostname, m.serial.strip()), spki_fingerprint(csr.public_key()),
            request.expected_centre, now_ms, self._issuer(csr, now, out))
        log.info("enrolled %s in %s (%s)", assigned.agent_id, assigned.centre, assigned.status)
        return self._issued(assigned, out[0], now_ms, attestation_csr)

    async def renew(self, request: enrollment_pb2.RenewRequest) -> enrollment_pb2.IssuedIdentity:
        try:
            current = x509.load_pem_x509_certificate(request.certificate_pem)
        except ValueError:
            raise InvalidRequestError("certificate_pem: not a PEM certificate") from None
        ident = self.ca.verify_issued(current)
        now = dt.datetime.fromtimestamp(self.clock(), dt.UTC)
        now_ms = int(now.timestamp() * 1000)
        if now > ident.not_after + self.grace:
            raise ForbiddenError("certificate expired beyond the grace window: enrol this PC again")
        if abs(request.timestamp_ms - now_ms) > RENEW_CLOCK_WINDOW_MS:
            raise UnauthenticatedError("renewal timestamp outside +-5 minutes of gateway time (check the clock)")
        key = current.public_key()
        if not isinstance(key, ec.EllipticCurvePublicKey):
            raise UnauthenticatedError("certificate key is not EC")
        try:
            key.verify(request.signature,
                       renew_message(request.csr_der, request.timestamp_ms, request.attestation_csr_der),
                       ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            raise UnauthenticatedError("renewal not signed by the certificate's key") from None
        csr = parse_csr(request.csr_der)
        attestation_csr = self._attestation_csr(request.attestation_csr_der, csr)
        out: list[x509.Certificate] = []
        assigned, _ = await self.registry.renew(ident.agent_id, ident.serial, spki_fingerprint(csr.public_key()),
                                                now_ms, self._issuer(csr, now, out))
        log.info("renewed the certificate of %s", assigned.agent_id)
        return self._issued(assigned, out[0], now_ms, attestation_csr)


class EnrollmentService(enrollment_pb2_grpc.EnrollmentServicer):
    def __init__(self, provisioner: Provisioner, metrics: GatewayMetrics) -> None:
        self._p = provisioner
        self._guard = _Guard(metrics, None)

    async def Enroll(self, request: enrollment_pb2.EnrollRequest,
                     context: aio.ServicerContext[enrollment_pb2.EnrollRequest, enrollment_pb2.EnrollResponse],
                     ) -> enrollment_pb2.EnrollResponse:
        async def handle() -> enrollment_pb2.EnrollResponse:
            return enrollment_pb2.EnrollResponse(identity=await self._p.enroll(request))
        return await self._guard.run("Enroll", context, 0, handle)

    async def Renew(self, request: enrollment_pb2.RenewRequest,
                    context: aio.ServicerContext[enrollment_pb2.RenewRequest, enrollment_pb2.RenewResponse],
                    ) -> enrollment_pb2.RenewResponse:
        async def handle() -> enrollment_pb2.RenewResponse:
            return enrollment_pb2.RenewResponse(identity=await self._p.renew(request))
        return await self._guard.run("Renew", context, 0, handle)


_OUTCOMES = frozenset({"pass", "fail", "warn", "skip"})


class AgentCheckService(enrollment_pb2_grpc.AgentCheckServicer):
    """Ping (identity + gateway time) and doctor results, for enrolled agents over mTLS."""

    def __init__(self, auth: CertificateAuthenticator, registry: IdentityRegistry, metrics: GatewayMetrics,
                 trust: TrustRegistry | None = None) -> None:
        self._auth = auth
        self._registry = registry
        self._trust = trust
        self._guard = _Guard(metrics, None)

    async def GetTrustBundle(self, request: enrollment_pb2.GetTrustBundleRequest,
                             context: aio.ServicerContext[enrollment_pb2.GetTrustBundleRequest,
                                                          enrollment_pb2.TrustBundle],
                             ) -> enrollment_pb2.TrustBundle:
        async def handle() -> enrollment_pb2.TrustBundle:
            self._auth.identity(_caller(context))
            if self._trust is None:
                raise NotFoundError("this gateway serves no trust bundle")
            bundle = await self._trust.bundle()
            now_ms = int(time.time() * 1000)
            if request.known_version == bundle.version:
                return enrollment_pb2.TrustBundle(version=bundle.version, not_modified=True, server_time_ms=now_ms)
            return enrollment_pb2.TrustBundle(
                version=bundle.version, server_time_ms=now_ms,
                csca_certificates=[e.der for e in bundle.entries if e.kind == CSCA],
                crls=[e.der for e in bundle.entries if e.kind == CRL])
        return await self._guard.run("GetTrustBundle", context, 0, handle)

    async def Ping(self, request: enrollment_pb2.PingRequest,
                   context: aio.ServicerContext[enrollment_pb2.PingRequest, enrollment_pb2.PingResponse],
                   ) -> enrollment_pb2.PingResponse:
        async def handle() -> enrollment_pb2.PingResponse:
            ident = self._auth.identity(_caller(context))
            return enrollment_pb2.PingResponse(agent_id=ident.agent_id, centre=ident.centre,
                                               province=ident.province, server_time_ms=int(time.time() * 1000))
        return await self._guard.run("Ping", context, 0, handle)

    async def ReportDoctor(self, request: enrollment_pb2.DoctorReport,
                           context: aio.ServicerContext[enrollment_pb2.DoctorReport, enrollment_pb2.DoctorAck],
                           ) -> enrollment_pb2.DoctorAck:
        async def handle() -> enrollment_pb2.DoctorAck:
            ident = self._auth.identity(_caller(context))
            if len(request.checks) > 200:
                raise InvalidRequestError("checks: at most 200")
            checks = []
            for check in request.checks:
                if check.outcome not in _OUTCOMES or not 1 <= len(check.name) <= 120:
                    raise InvalidRequestError("check: name 1-120 characters, outcome pass/fail/warn/skip")
                checks.append({"name": check.name, "outcome": check.outcome})
            passed = all(c["outcome"] != "fail" for c in checks)
            now_ms = int(time.time() * 1000)
            await self._registry.save_doctor(ident.agent_id, {"passed": passed, "checks": checks,
                                                              "agent_time_ms": request.agent_time_ms}, now_ms)
            return enrollment_pb2.DoctorAck(server_time_ms=now_ms)
        return await self._guard.run("ReportDoctor", context, 0, handle)
