"""An in-process CardTransport over an emulated chip (``--simulate`` and tests)."""

from __future__ import annotations

from agent.errors import CardRemovedError
from agent.simulator.emrtd.card import EmulatedEmrtd


class EmulatedTransport:
    """Implements :class:`agent.drivers.idcard.transport.CardTransport`.

    ``extended_length`` defaults to what the card's profile supports; override it to model a
    reader that disagrees with the card. ``remove_after`` pulls the card after that many
    APDUs (CardRemovedError), as a hand would.
    """

    def __init__(self, card: EmulatedEmrtd, *, extended_length: bool | None = None,
                 remove_after: int | None = None) -> None:
        self.card = card
        self._extended = card.profile.extended_length if extended_length is None else extended_length
        self.remove_after = remove_after
        self.sent = 0
        self.log: list[tuple[bytes, bytes]] | None = None
        if not card.powered:
            card.power_on()

    @property
    def extended_length(self) -> bool:
        return self._extended

    def record(self) -> list[tuple[bytes, bytes]]:
        """Start keeping every (command, response) pair (for the replay benchmark)."""
        self.log = []
        return self.log

    async def transmit(self, apdu: bytes) -> bytes:
        if self.remove_after is not None and self.sent >= self.remove_after:
            self.card.power_off()
            raise CardRemovedError("the card was removed from the reader")
        self.sent += 1
        response = self.card.transmit(apdu)
        if self.log is not None:
            self.log.append((apdu, response))
        return response
