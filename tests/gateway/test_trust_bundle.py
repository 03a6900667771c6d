"""The gateway's trust bundle: what `trust import` accepts and refuses, and the served version,
on both storage backends."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from agent.errors import InvalidRequestError, NotFoundError
from agent.simulator.emrtd.pki import build_master_list, build_pki
from gateway.store.base import FleetStore
from gateway.store.trust import TrustRegistry
from gateway.trust import CRL, CSCA, entries_from_file
from tests.idcard.test_trust_crl import crl_of
from tests.provisioning.master_list import openssl_master_list


async def _import(registry: TrustRegistry, data: bytes, name: str) -> int:
    bundle = await registry.bundle()
    return await registry.add(entries_from_file(data, name, list(bundle.entries)), 1000)


async def test_certificate_master_list_and_crl_make_the_bundle(store: FleetStore, tmp_path: Path) -> None:
    registry = TrustRegistry(store)
    empty = await registry.bundle()
    assert empty.entries == ()
    card = build_pki()
    assert await _import(registry, card.csca_pem, "vn.pem") == 1
    first = await registry.bundle()
    assert first.version != empty.version
    [entry] = first.entries
    assert (entry.kind, entry.country, entry.source) == (CSCA, "VN", "certificate vn.pem")
    assert entry.serial == format(card.csca_cert.serial_number, "x")

    # the same certificate again: nothing new, the version stays
    assert await _import(registry, card.csca_der, "vn.der") == 0
    assert (await registry.bundle()).version == first.version

    other = build_pki("LA")
    ml = openssl_master_list(tmp_path / "ml", [other.csca_der]).read_bytes()
    assert await _import(registry, ml, "world.ml") == 2
    second = await registry.bundle()
    assert second.version != first.version
    assert {e.source for e in second.entries} == {"certificate vn.pem", "master list world.ml"}

    assert await _import(registry, crl_of(card, [card.ds_cert.serial_number]), "vn.crl") == 1
    crls = [e for e in (await registry.bundle()).entries if e.kind == CRL]
    assert [(c.country, c.serial) for c in crls] == [("VN", "7")]

    removed = await registry.remove(entry.fingerprint[:12], 2000)
    assert [r.fingerprint for r in removed] == [entry.fingerprint]
    third = await registry.bundle()
    assert entry.fingerprint not in {e.fingerprint for e in third.entries}
    assert third.version not in (first.version, second.version)
    with pytest.raises(NotFoundError):
        await registry.remove("deadbeefdeadbeef", 3000)


def test_a_master_list_with_a_broken_signature_is_refused(tmp_path: Path) -> None:
    ml = bytearray(openssl_master_list(tmp_path / "ml", [build_pki().csca_der]).read_bytes())
    ml[-5] ^= 0x01  # inside the signature value, the last field of the SignerInfo
    with pytest.raises(InvalidRequestError, match="signature does not verify"):
        entries_from_file(bytes(ml), "bad.ml", [])


def test_a_master_list_signed_under_a_csca_in_neither_the_list_nor_the_bundle_is_refused() -> None:
    card, signer = build_pki(), build_pki("VN", label="ML")
    ml = build_master_list([card.csca_cert], signer)  # the signer's own CSCA left out of the list
    with pytest.raises(InvalidRequestError, match="not issued by a CSCA in the list or the bundle"):
        entries_from_file(ml, "partial.ml", [])
    # with the signer's CSCA already in the bundle the same list is accepted
    bundle = entries_from_file(signer.csca_cert.public_bytes(serialization.Encoding.PEM), "signer.pem", [])
    [entry] = entries_from_file(ml, "partial.ml", bundle)
    assert entry.der == card.csca_der


def test_a_crl_needs_its_csca_in_the_bundle_and_other_files_are_refused() -> None:
    card = build_pki()
    crl = crl_of(card, [card.ds_cert.serial_number])
    with pytest.raises(InvalidRequestError, match="CRL refused: not signed by a CSCA in the bundle"):
        entries_from_file(crl, "vn.crl", [])
    forged = crl_of(card, [1], signer=build_pki(label="rogue"))
    bundle = entries_from_file(card.csca_der, "vn.der", [])
    with pytest.raises(InvalidRequestError, match="CRL refused"):
        entries_from_file(forged, "forged.crl", bundle)
    with pytest.raises(InvalidRequestError, match="neither a certificate, an ICAO master list nor a CRL"):
        entries_from_file(b"hello", "notes.txt", [])


async def test_the_trust_bundle_an_agent_holds_is_kept_from_its_beats_and_reports(store: FleetStore) -> None:
    from gateway.convert import health_pb
    from gateway.model import AgentHealthInfo, AgentRef, AgentReport, Beat

    agent = AgentRef("hn-bd-001-pc07", "HN", "HN-BD-001")
    held = AgentHealthInfo("0.2.0", 5, "pc07", "abc", 0, "4.0123456789abcdef", 120)
    await store.save_beats([Beat(agent, held, 30, 5_000)])
    [row] = await store.agents()
    assert (row.health.trust_bundle_version, row.health.trust_bundle_age_seconds) == ("4.0123456789abcdef", 120)
    newer = AgentHealthInfo("0.2.0", 9, "pc07", "abc", 0, "5.fedcba9876543210", 3)
    await store.apply_reports([AgentReport(agent, 1, (), 6_000, newer)])
    [row] = await store.agents()
    assert row.health == newer
    assert health_pb(row.health).trust_bundle_version == "5.fedcba9876543210"
