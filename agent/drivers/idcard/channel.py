"""A channel to one card: plain or secure-messaging APDUs over a CardTransport, counted."""

from __future__ import annotations

from agent.drivers.idcard.apdu import CommandApdu, ResponseApdu
from agent.drivers.idcard.secure_messaging import DeferredResponse, SecureMessaging
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

    async def send_later(self, cmd: CommandApdu, *, extended: bool = False) -> DeferredResponse | ResponseApdu:
        """Like :meth:`send`, but under secure messaging the answer's MAC check and decryption
        may be left to :meth:`DeferredResponse.finish` (see ``SecureMessaging.unprotect_later``)."""
        sm = self.sm
        if sm is None:
            return await self.send(cmd, extended=extended)
        raw = sm.protect(cmd, extended)
        self.apdu_count += 1
        answer = await self.transport.transmit(raw)
        return sm.unprotect_later(answer)

    async def send_plain(self, cmd: CommandApdu) -> ResponseApdu:
        """Send without SM even if a channel exists (only before access control)."""
        self.apdu_count += 1
        return ResponseApdu.parse(await self.transport.transmit(cmd.encode()))
