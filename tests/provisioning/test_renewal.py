"""Certificate renewal: half-lifetime rotation and the grace window after a long power-off."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from agent.errors import ForbiddenError, UnauthenticatedError
from agent.provisioning.enroll import CertificateRenewer, enroll, renew_request
from agent.provisioning.identity import IdentityInfo, IdentityStore, make_csr, new_key
from centre.gateway.v1 import enrollment_pb2
from gateway.ca import CertificateAuthority
from gateway.enrollment import AccessHolder, Provisioner
from gateway.store import FleetStore
from gateway.store.identity import IdentityRegistry
from tests.provisioning.conftest import CENTRE
from tests.provisioning.pki import ProvisioningGateway, facts, ping

DAY = 86400.0


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


async def _provisioner(store: FleetStore, tmp_path: Path, clock: Clock) -> Provisioner:
    registry = IdentityRegistry(store)
    ca = CertificateAuthority.load_or_create(tmp_path / "ca")
    access = AccessHolder(registry, 1.0)
    return Provisioner(registry, ca, access, lifetime=dt.timedelta(days=30), grace=dt.timedelta(days=60),
                       chain_pem=ca.cert_pem, report_endpoint="127.0.0.1:1", clock=clock)


async def _enrolled(p: Provisioner, clock: Clock, tmp_path: Path) -> IdentityStore:
    now_ms = int(clock() * 1000)
    await p.registry.add_centre(CENTRE, "Ba Dinh", "HN", now_ms)
    token, _ = await p.registry.create_token(CENTRE, 1, now_ms + 3600_000, now_ms)
    key = new_key()
    issued = await p.enroll(enrollment_pb2.EnrollRequest(
        token=token, csr_der=make_csr(key, facts(1)), machine=enrollment_pb2.MachineIdentity(machine_id="a" * 32)))
    store = IdentityStore(tmp_path / "pc")
    store.install(key, issued.certificate_pem, issued.ca_chain_pem,
                  IdentityInfo(issued.agent_id, issued.centre, issued.province, "", "", "pending"))
    return store


async def test_expired_certificate_renews_within_grace_and_not_after(store: FleetStore, tmp_path: Path) -> None:
    clock = Clock()
    p = await _provisioner(store, tmp_path, clock)
    pc = await _enrolled(p, clock, tmp_path)
    first_serial = pc.certificate().serial_number
    # the PC was switched off for 70 days: its 30-day certificate expired 40 days ago, grace is 60 days
    clock.now += 70 * DAY
    assert pc.check(dt.datetime.fromtimestamp(clock.now, dt.UTC)) == "certificate expired"
    renewed = await p.renew(renew_request(pc, int(clock.now * 1000)))
    assert renewed.agent_id == "hn-bd-001-001"
    pc.replace_certificate(renewed.certificate_pem, renewed.ca_chain_pem, pc.info())
    assert pc.certificate().serial_number != first_serial
    assert pc.check(dt.datetime.fromtimestamp(clock.now, dt.UTC)) == ""
    # switched off again for 100 days: 30 + 60 days of grace are over
    clock.now += 100 * DAY
    with pytest.raises(ForbiddenError, match="beyond the grace window"):
        await p.renew(renew_request(pc, int(clock.now * 1000)))


async def test_renewal_needs_the_certificates_key_and_a_fresh_timestamp(store: FleetStore, tmp_path: Path) -> None:
    clock = Clock()
    p = await _provisioner(store, tmp_path, clock)
    pc = await _enrolled(p, clock, tmp_path)
    stale = renew_request(pc, int(clock.now * 1000) - 10 * 60 * 1000)
    with pytest.raises(UnauthenticatedError, match="timestamp"):
        await p.renew(stale)
    # a thief with the certificate (public) but not the key
    thief = ec.generate_private_key(ec.SECP256R1())
    request = renew_request(pc, int(clock.now * 1000))
    message = b"centre-renew\0" + request.csr_der + str(request.timestamp_ms).encode()
    request.signature = thief.sign(message, ec.ECDSA(hashes.SHA256()))
    with pytest.raises(UnauthenticatedError, match="not signed by the certificate's key"):
        await p.renew(request)
    # revoked agents cannot renew
    await p.registry.set_status("hn-bd-001-001", "revoked")
    with pytest.raises(ForbiddenError, match="revoked"):
        await p.renew(renew_request(pc, int(clock.now * 1000)))
    assert pc.key().public_key().public_bytes(serialization.Encoding.DER,
                                              serialization.PublicFormat.SubjectPublicKeyInfo)


async def test_agent_renews_at_half_lifetime_and_keeps_reporting(
        pgateway_factory: Callable[..., ProvisioningGateway], tmp_path: Path) -> None:
    # 8-second certificates: renewal is due after 4 s
    gw = pgateway_factory(lifetime_days=8 / DAY, grace_days=1.0)
    gw.cli("centre", "add", CENTRE, "--name", "Ba Dinh", "--province", "HN")
    gw.cli("pc", "add", "--centre", CENTRE, "--serial", "SN-R")
    pc = IdentityStore(tmp_path / "pc")
    await asyncio.to_thread(enroll, pc, gw.enroll_target, gw.token(CENTRE), facts(1, "SN-R"), ca_file=str(gw.ca_file))
    first = pc.certificate().serial_number
    renewer = CertificateRenewer(pc, retry_min=0.2, check_max=0.5)
    assert 0 < renewer.due_in() <= 4.5
    task = asyncio.create_task(renewer.run())
    try:
        await asyncio.wait_for(renewer.renewed.wait(), 30)
    finally:
        task.cancel()
    assert pc.certificate().serial_number != first
    assert renewer.due_in() > 0
    reply = await asyncio.to_thread(ping, pc, gw.target)
    assert reply.agent_id == "hn-bd-001-001"


async def test_expired_certificate_is_refused_on_the_reporting_port(
        pgateway_factory: Callable[..., ProvisioningGateway], tmp_path: Path) -> None:
    gw = pgateway_factory(lifetime_days=1 / DAY, grace_days=1.0)
    gw.cli("centre", "add", CENTRE, "--name", "Ba Dinh", "--province", "HN")
    gw.cli("pc", "add", "--centre", CENTRE, "--serial", "SN-E")
    pc = IdentityStore(tmp_path / "pc")
    await asyncio.to_thread(enroll, pc, gw.enroll_target, gw.token(CENTRE), facts(1, "SN-E"), ca_file=str(gw.ca_file))
    await asyncio.sleep(1.5)
    assert pc.check() == "certificate expired"
    with pytest.raises(grpc.RpcError):
        await asyncio.to_thread(ping, pc, gw.target)
    # re-running enroll (the installer's reflex) renews within the grace window, no token needed
    outcome = await asyncio.to_thread(enroll, pc, gw.enroll_target, "not-a-token", facts(1, "SN-E"),
                                      ca_file=str(gw.ca_file))
    assert outcome.detail == "expired certificate renewed"
    assert (await asyncio.to_thread(ping, pc, gw.target)).agent_id == "hn-bd-001-001"


async def test_the_attestation_csr_is_bound_to_the_renewal_and_optional(store: FleetStore, tmp_path: Path) -> None:
    from cryptography import x509

    from agent.attestation_verify import ATTESTATION_EKU

    clock = Clock()
    p = await _provisioner(store, tmp_path, clock)
    pc = await _enrolled(p, clock, tmp_path)
    await p.registry.set_status("hn-bd-001-001", "active")
    now_ms = int(clock.now * 1000)
    # an agent of the version before attestation certificates: no attestation CSR, the old message
    old = renew_request(pc, now_ms)
    old.ClearField("attestation_csr_der")
    old.signature = pc.key().sign(b"centre-renew\0" + old.csr_der + str(now_ms).encode(), ec.ECDSA(hashes.SHA256()))
    renewed = await p.renew(old)
    assert renewed.certificate_pem
    assert not renewed.attestation_certificate_pem
    pc.replace_certificate(renewed.certificate_pem, renewed.ca_chain_pem, pc.info())
    # someone who swaps in an attestation CSR for their own key breaks the identity key's signature
    request = renew_request(pc, now_ms)
    request.attestation_csr_der = make_csr(new_key(), facts(9))
    with pytest.raises(UnauthenticatedError, match="not signed by the certificate's key"):
        await p.renew(request)
    # today's agent: the attestation certificate comes with the client certificate
    renewed = await p.renew(renew_request(pc, now_ms))
    cert = x509.load_pem_x509_certificate(renewed.attestation_certificate_pem)
    assert list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [ATTESTATION_EKU]
