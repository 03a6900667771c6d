"""An eMRTD (ICAO 9303) chip card emulator that answers APDUs, in process.

API (stable; the PC/SC testbed and ``--simulate`` code against it)::

    from agent.simulator.emrtd import EmulatedEmrtd, CardFaults, sample_cccd, sample_passport

    card = EmulatedEmrtd(sample_cccd(), faults=CardFaults())
    atr = card.power_on()           # bytes; resets the session state
    rapdu = card.transmit(apdu)     # bytes: data + SW1 SW2; synchronous, no I/O
    card.power_off()

``sample_cccd(pace=(), extended_length=False, ...)`` changes any profile field;
:class:`EmulatedTransport` wraps a card as an :class:`agent.drivers.idcard.transport.CardTransport`;
``card.issued.pki.csca_der`` is the CSCA certificate to trust.
"""

from agent.simulator.emrtd.card import ATR, EmulatedEmrtd
from agent.simulator.emrtd.issuer import CardFaults, IssuedCard, issue
from agent.simulator.emrtd.profiles import (
    CardProfile,
    PaceOffer,
    card_qr_text,
    sample_cccd,
    sample_face,
    sample_passport,
)
from agent.simulator.emrtd.transport import EmulatedTransport

__all__ = [
    "ATR", "CardFaults", "CardProfile", "EmulatedEmrtd", "EmulatedTransport", "IssuedCard", "PaceOffer",
    "card_qr_text", "issue", "sample_cccd", "sample_face", "sample_passport",
]
