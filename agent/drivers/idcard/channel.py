"""A channel to one card: plain or secure-messaging APDUs over a CardTransport, counted."""

from __future__ import annotations

from agent.drivers.idcard.apdu import CommandApdu, ResponseApdu
from agent.drivers.idcard.secure_messaging import SecureMessaging
from agent.drivers.idcard.transport import CardTransport


class CardChannel:
    """Sends commands to the card, protecting them once a secure channel is established."""

    def __init__(self, transport: CardTransport) -> None:
        self.transport = transport
        self.sm: SecureMessaging | None = None
        self.apdu_count = 0

    @property
    def extended_length(self) -> bool:
        return self.transport.extended_length

    async def send(self, cmd: CommandApdu, *, extended: bool = False) -> ResponseApdu:
        """Send ``cmd`` (protected when SM is active). ``extended`` asks for the
        extended-length form; callers only ask when the transport allows it."""
        sm = self.sm
        raw = sm.protect(cmd, extended) if sm is not None else cmd.encode(extended or cmd.needs_extended())
        self.apdu_count += 1
        answer = await self.transport.transmit(raw)
        if self.sm is not None:
            return self.sm.unprotect(answer)
        return ResponseApdu.parse(answer)

    async def send_plain(self, cmd: CommandApdu) -> ResponseApdu:
        """Send without SM even if a channel exists (only before access control)."""
        self.apdu_count += 1
        return ResponseApdu.parse(await self.transport.transmit(cmd.encode()))
