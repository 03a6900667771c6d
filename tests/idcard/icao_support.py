"""Shared helpers for the ICAO 9303 tests: read an emulated card in process."""

from __future__ import annotations

from agent.domain.idcard import AccessKey, CardRead, ReadOptions
from agent.drivers.idcard.session import read_document
from agent.drivers.idcard.trust_store import TrustStore
from agent.simulator.emrtd import CardFaults, CardProfile, EmulatedEmrtd, EmulatedTransport


def trust_for(card: EmulatedEmrtd) -> TrustStore:
    """A trust store holding the CSCA of the card's (non-rogue) test PKI."""
    from agent.simulator.emrtd.pki import build_pki

    store = TrustStore()
    store.add_certificate(build_pki(card.profile.country, card.profile.pki_kind).csca_pem)
    return store


async def read_card(
    profile: CardProfile,
    *,
    key: AccessKey | None = None,
    faults: CardFaults | None = None,
    trusted: bool = True,
    options: ReadOptions | None = None,
    extended_length: bool | None = None,
) -> tuple[CardRead, EmulatedEmrtd, EmulatedTransport]:
    card = EmulatedEmrtd(profile, faults=faults)
    transport = EmulatedTransport(card, extended_length=extended_length)
    trust = trust_for(card) if trusted else None
    result = await read_document(transport, key or card.issued.mrz_key, options or ReadOptions(), trust)
    return result, card, transport
