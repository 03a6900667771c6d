"""The ``--simulate`` ID-card reader: the eMRTD emulator in process, read by the real ICAO code.

A read goes through :func:`agent.drivers.idcard.session.read_document` exactly as with a
PC/SC reader; only the transport differs: :class:`SlotTransport` hands each APDU to the
:class:`~agent.simulator.emrtd.EmulatedEmrtd` on the reader (through ``run_blocking``, as
the PC/SC transport does, since the card does real cryptography).

The card on the reader is a made-up CCCD whose MRZ key is :data:`SIMULATED_KEY`
(document number ``203004567``, born ``900115``, expires ``300115``; CAN ``123456``).
Tests (and the API's test hooks) put other cards on it with
:meth:`SimulatedIdCardReader.insert_card` and take them off with
:meth:`~SimulatedIdCardReader.remove_card`; a card removed during a read fails that read
with :class:`~agent.errors.CardRemovedError`, as a hand pulling a card would.

The emulator's test CSCA is trusted (unless ``trust_card_csca = false``: a card from a state
whose CSCA is not installed, verified as ``unknown_issuer``), so the simulated card verifies
as ``valid``; certificates from ``csca_dir`` are trusted in addition.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from agent.domain.device import Capabilities, DeviceDescriptor, DeviceFamily, DeviceHealth, DeviceState
from agent.domain.events import EventKind
from agent.domain.idcard import AccessKey, CardRead, MrzKey, ReadOptions
from agent.drivers.base import BackendOptions, DriverContext, IdCardReader
from agent.drivers.idcard.trust_store import TrustStore
from agent.drivers.options import SimIdCardOptions, typed_options
from agent.errors import (
    AgentError,
    CardRemovedError,
    ConfigError,
    DeviceBusyError,
    DeviceStateError,
    DeviceUnavailableError,
)
from agent.simulator.base import SingleDeviceBackend
from agent.simulator.emrtd import CardProfile, EmulatedEmrtd, card_qr_text, sample_cccd, sample_passport
from agent.simulator.emrtd.profiles import SAMPLE_DG13, td1

RunBlocking = Callable[..., Awaitable[Any]]

#: The MRZ key of the card the simulated reader starts with (made-up citizen).
SIMULATED_KEY = MrzKey(document_number="203004567", date_of_birth="900115", date_of_expiry="300115")
SIMULATED_ID = "001203004567"  # a CCCD's document number is the last 9 digits of the 12-digit ID


def sample_access_key() -> MrzKey:
    """The MRZ key of the simulated citizen's card (for demos and ``doctor --simulate``)."""
    return SIMULATED_KEY


def simulated_cccd() -> CardProfile:
    """The sample CCCD of the emulator, re-keyed to :data:`SIMULATED_KEY`."""
    dg13 = dict(SAMPLE_DG13)
    dg13.update({1: SIMULATED_ID, 3: "15/01/1990", 12: "15/01/2030"})
    mrz = td1("ID", "VNM", SIMULATED_KEY.document_number, SIMULATED_ID, SIMULATED_KEY.date_of_birth, "F",
              SIMULATED_KEY.date_of_expiry, "VNM", "", "TRAN", "THI THU NGHIEM")
    return sample_cccd(mrz=mrz, dg13=dg13)


def simulated_card_qr() -> str:
    """The QR code on the face of :func:`simulated_cccd` (issued 10 January 2024 at 33: it
    expires at 40, 15 January 2030, the expiry in :data:`SIMULATED_KEY`)."""
    return card_qr_text(simulated_cccd())


class SlotTransport:
    """:class:`~agent.drivers.idcard.transport.CardTransport` to the card on a simulated reader.

    Bound to one card: if that card leaves the reader (or another one is put on it), the
    next command fails with :class:`~agent.errors.CardRemovedError`.
    """

    def __init__(self, reader: SimulatedIdCardReader, card: EmulatedEmrtd, run_blocking: RunBlocking) -> None:
        self._reader = reader
        self._card = card
        self._run_blocking = run_blocking
        self.apdus_sent = 0

    @property
    def extended_length(self) -> bool:
        return self._card.profile.extended_length

    async def transmit(self, apdu: bytes) -> bytes:
        if self._reader.card is not self._card:
            raise CardRemovedError("the card was removed from the reader")
        self.apdus_sent += 1
        response: bytes = await self._run_blocking(self._card.transmit, bytes(apdu))
        if self._reader.card is not self._card:  # pulled while the card was answering
            raise CardRemovedError("the card was removed from the reader")
        return response


class SimulatedIdCardReader(IdCardReader):
    """A reader slot holding (or not) an emulated eMRTD."""

    def __init__(self, descriptor: DeviceDescriptor, ctx: DriverContext, backend: SimulatedIdCardBackend
                 ) -> None:
        super().__init__(descriptor, ctx)
        self._backend = backend
        self.card: EmulatedEmrtd | None = None
        self._open = False
        self._busy = asyncio.Lock()
        self._reads = 0
        self._failures = 0
        self._cards_seen = 0
        self._last_error = ""

    def capabilities(self) -> Capabilities:
        features = {"bac", "pace", "passive_authentication", "active_authentication", "chip_authentication",
                    "card_events"}
        if self.card is not None and self.card.profile.extended_length:
            features.add("extended_length")
        return Capabilities(features=frozenset(features))

    def health(self) -> DeviceHealth:
        if not self._open:
            state = DeviceState.PRESENT
        elif self._busy.locked():
            state = DeviceState.BUSY
        else:
            state = DeviceState.READY
        return DeviceHealth(state=state, counters={"reads": self._reads, "read_failures": self._failures,
                                                   "cards_inserted": self._cards_seen},
                            last_error=self._last_error)

    async def open(self) -> None:
        self._open = True
        if self.card is None and self._backend.initial_card is not None:
            self.insert_card(self._backend.initial_card)

    async def close(self) -> None:
        self._open = False

    def card_present(self) -> bool:
        return self.card is not None

    # -- test hooks: a hand putting cards on the reader ------------------------------------------

    def insert_card(self, card: EmulatedEmrtd | None = None) -> EmulatedEmrtd:
        """Put ``card`` (default: a fresh copy of the backend's card) on the reader."""
        if card is None:
            card = EmulatedEmrtd(self._backend.card_issue())
        if self.card is not None:
            self.remove_card()
        card.power_on()
        self.card = card
        self._cards_seen += 1
        self._ctx.emit(self, EventKind.CARD_INSERTED, {"reader": self.descriptor.name})
        self._ctx.health_changed(self)  # the listed card presence follows
        return card

    def remove_card(self) -> None:
        """Take the card off the reader (a read in progress fails with CardRemovedError)."""
        if self.card is None:
            return
        self.card.power_off()
        self.card = None
        self._ctx.emit(self, EventKind.CARD_REMOVED, {"reader": self.descriptor.name})
        self._ctx.health_changed(self)

    # -- reading ---------------------------------------------------------------------------------

    async def read_card(self, key: AccessKey, options: ReadOptions) -> CardRead:
        from agent.drivers.idcard.session import read_document

        if not self._open:
            raise DeviceUnavailableError("the simulated reader is closed")
        card = self.card
        if card is None:
            raise DeviceStateError("no card on the reader", reason="NO_CARD")
        if self._busy.locked():
            raise DeviceBusyError("the reader is already reading a card")
        try:
            async with self._busy:
                self._ctx.health_changed(self)
                card.power_on()  # a fresh session, as a reader connecting to the card
                transport = SlotTransport(self, card, self._ctx.run_blocking)
                try:
                    result: CardRead = await read_document(transport, key, options,
                                                           await self._backend.trust_store())
                except AgentError as error:
                    self._failures += 1
                    self._last_error = f"{error.reason}: {error.message}"
                    raise
                self._reads += 1
                self._last_error = ""
                return result
        finally:
            self._ctx.health_changed(self)


class SimulatedIdCardBackend(SingleDeviceBackend):
    """``sim-idcard``: one simulated reader with :func:`simulated_cccd` on it.

    Options: ``profile`` (``cccd``, the default, ``passport`` or ``empty`` for no card at
    start), ``csca_dir`` (more trusted CSCAs), ``trust_card_csca`` (``true``, the default: the
    emulator's CSCA is trusted).
    """

    name = "sim-idcard"
    family = DeviceFamily.IDCARD
    device_name = "Simulated ID-card reader"

    def __init__(self, ctx: DriverContext, options: BackendOptions) -> None:
        super().__init__(ctx, options)
        opts = typed_options(SimIdCardOptions, options)
        self._profile_name = opts.profile
        self._csca_dir = Path(opts.csca_dir) if opts.csca_dir else None
        self._trust_card_csca = opts.trust_card_csca
        self._issued: EmulatedEmrtd | None = None
        self.initial_card: EmulatedEmrtd | None = None
        self._trust: TrustStore | None = None

    def card_issue(self) -> CardProfile:
        return sample_passport() if self._profile_name == "passport" else simulated_cccd()

    async def start(self) -> None:
        if self._csca_dir is not None and not self._csca_dir.is_dir():
            raise ConfigError(f"idcard csca_dir {str(self._csca_dir)!r} is not a directory")
        # Issuing the card generates its keys and signs its SOD: off the event loop.
        card = await self._ctx.run_blocking(EmulatedEmrtd, self.card_issue())
        self._issued = card
        self.initial_card = None if self._profile_name == "empty" else card
        self._trust = await self._ctx.run_blocking(self._load_trust, card)
        await super().start()

    def _load_trust(self, card: EmulatedEmrtd) -> TrustStore:
        store = TrustStore.from_directory(self._csca_dir) if self._csca_dir is not None else TrustStore()
        if self._trust_card_csca:
            store.add_certificate(card.issued.pki.csca_der)
        return store

    async def trust_store(self) -> TrustStore:
        if self._trust is None:
            raise DeviceUnavailableError("the simulated reader is not started")
        distributed = self._ctx.distributed_trust()
        return distributed.with_local(self._trust) if distributed is not None else self._trust

    def make_device(self, descriptor: DeviceDescriptor) -> SimulatedIdCardReader:
        return SimulatedIdCardReader(descriptor, self._ctx, self)
