"""The seam between the ICAO 9303 code and whatever carries APDUs to a card.

The PC/SC reader (through pcscd) and the in-process ``--simulate`` card both
implement :class:`CardTransport`; the protocol code in this package only ever
sees this interface.

Error semantics (there is no transport-specific error class): an implementation
raises only :mod:`agent.errors` types:

- :class:`~agent.errors.CardRemovedError` when the card left the reader
  mid-operation (e.g. pcsc ``0x80100016`` / ``0x80100069``);
- :class:`~agent.errors.DeviceUnavailableError` when the reader or its service
  (pcscd) cannot be reached;
- :class:`~agent.errors.CardTimeoutError` when the card does not answer in time;
- :class:`~agent.errors.DeviceProtocolError` for a response shorter than the two
  status bytes.

A card's *status word* (``6982``, ``6A82``...) is never an exception at this
layer: it is returned in the last two bytes and interpreted by the caller.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable


@runtime_checkable
class CardTransport(Protocol):
    """Carries command APDUs to one powered, connected card and returns its responses."""

    async def transmit(self, apdu: bytes) -> bytes:
        """Send one command APDU (ISO 7816-4, short or extended form) and return the
        response: data bytes followed by SW1 SW2 (so always at least 2 bytes).

        A transport handles T=0 ``61xx`` (GET RESPONSE) and ``6Cxx`` (re-send with the
        right Le) itself where its reader needs it, so callers see the final response.
        """
        ...

    @property
    def extended_length(self) -> bool:
        """True when the reader/card path accepts extended-length APDUs (Lc/Le > 255/256).

        Callers only use extended length when this is true *and* the card's EF.ATR/INFO or
        ATR historical bytes do not forbid it; otherwise they use short APDUs.
        """
        ...
