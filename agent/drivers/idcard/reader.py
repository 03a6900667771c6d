"""The PC/SC ID-card backend (``pcsc``): one :class:`PcscIdCardReader` per PC/SC reader.

Discovery and card events come from :class:`~agent.drivers.idcard.pcsc_watch.PcscWatcher`
(its thread hands events to the event loop with ``call_soon_threadsafe``). A read runs
whole in one ``run_blocking`` worker: connect, the ICAO 9303 session
(:func:`agent.drivers.idcard.session.read_document`, on a private event loop in that
thread) over a :class:`~agent.drivers.idcard.pcsc.PcscTransport`, disconnect. That is one
thread hop per read instead of one per APDU, and secure messaging and signature checks
never hold the agent's event loop. pcscd down: every reader reports ``error`` (condition
``pcscd-unavailable``) until the watcher reaches pcscd again; readers missing then are lost.

Backend options (``[drivers.pcsc]``):

``csca_dir``
    Directory of CSCA certificates (PEM/DER), ICAO master lists and DS CRLs (``.crl``) for
    passive authentication. An enrolled agent adds the gateway's trust bundle to it
    (:class:`~agent.drivers.idcard.trust_bundle.DistributedTrust`). With neither, every
    card's issuer is ``unknown_issuer``.
``extended_length``
    ``auto`` (default), ``always`` or ``never``: see
    :func:`~agent.drivers.idcard.pcsc.choose_extended_length`.

Stable keys. pcsc-lite names a reader ``"<friendly name> XX YY"``: ``YY`` is the slot of
a multi-slot reader (a dual-interface reader's contact and contactless slots are different
devices, so the slot stays in the key), ``XX`` is a counter pcscd hands out to tell apart
readers with the same friendly name, in plug order, so it can change from one plug-in to
the next. The key is therefore the friendly name plus the slot (``"Virtual PCD/0"``).
For USB readers pcscd puts the serial number into the friendly name when the device has
one, which makes the key survive moving the reader to another port. Two identical readers
without serial numbers plugged at once get ``#XX`` appended to the second one's key: there
is nothing else to tell them apart by.

Card presence. Each reader keeps the watcher's last word on its card (no polling of its
own) and reports a change through ``health_changed``: the core lists it (``card_present``)
and sends a read that names no reader to the one reader holding a card. A slot whose name
has the word ``SAM`` holds a secure access module, not a citizen's card: it declares the
feature ``sam_slot`` and such reads never go there.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, cast

from agent.domain.device import (
    Capabilities,
    Condition,
    DeviceDescriptor,
    DeviceFamily,
    DeviceHealth,
    DeviceState,
    Severity,
)
from agent.domain.events import EventKind
from agent.domain.idcard import AccessKey, CardRead, ReadOptions
from agent.drivers.base import BackendOptions, DeviceBackend, DriverContext, IdCardReader
from agent.drivers.idcard.pcsc import (
    PROTOCOL_T0,
    ExtendedLengthPolicy,
    PcscCardConnection,
    PcscContext,
    PcscTransport,
    atr_extended_length,
    choose_extended_length,
)
from agent.drivers.idcard.pcsc_watch import (
    CardInserted,
    CardRemoved,
    PcscWatcher,
    ReaderAppeared,
    ReaderVanished,
    ServiceChanged,
    WatchEvent,
)
from agent.drivers.options import PcscOptions, typed_options
from agent.errors import (
    AgentError,
    ConfigError,
    DeviceBusyError,
    DeviceStateError,
    DeviceUnavailableError,
)

if TYPE_CHECKING:
    from agent.drivers.idcard.trust_store import TrustStore

BACKEND_NAME = "pcsc"
_READER_NAME = re.compile(r"^(?P<base>.*\S) (?P<index>[0-9A-Fa-f]{2}) (?P<slot>[0-9A-Fa-f]{2})$")
_SAM_SLOT = re.compile(r"\bSAM\b")
_FEATURES = frozenset({"bac", "pace", "passive_authentication", "active_authentication",
                       "chip_authentication", "card_events"})


def reader_stable_key(reader: str) -> str:
    """``"ACS ACR1252 (1234) 01 00"`` -> ``"ACS ACR1252 (1234)/0"`` (see the module docstring)."""
    match = _READER_NAME.match(reader)
    if match is None:
        return reader
    return f"{match['base']}/{int(match['slot'], 16)}"


def is_sam_slot(reader: str) -> bool:
    """A slot for a secure access module, by its name: pcsc-lite names a multi-slot reader's
    slots after their interface (``"ACS ACR1281 1S Dual Reader [... SAM] 00 02"``)."""
    return _SAM_SLOT.search(reader) is not None


def reader_index(reader: str) -> str:
    match = _READER_NAME.match(reader)
    return match["index"] if match else ""


class _WorkerLoop:
    """One worker thread's private event loop for ICAO sessions, closed when the thread ends.

    A fresh ``asyncio.Runner`` per read costs about 0.3 ms of CPU (a new selector and
    self-pipe, shutting down generators and the default executor); ``run_until_complete``
    on a kept loop costs a few microseconds. The thread-local slot drops this holder when
    its thread exits, and the holder closes the loop then.
    """

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()

    def __del__(self) -> None:
        if not self.loop.is_closed():
            self.loop.close()


_worker_loops = threading.local()


def _worker_loop() -> asyncio.AbstractEventLoop:
    holder: _WorkerLoop | None = getattr(_worker_loops, "holder", None)
    if holder is None or holder.loop.is_closed():
        holder = _WorkerLoop()
        _worker_loops.holder = holder
    return holder.loop


class PcscIdCardReader(IdCardReader):
    """One PC/SC reader slot."""

    def __init__(self, descriptor: DeviceDescriptor, ctx: DriverContext, backend: PcscBackend,
                 reader: str) -> None:
        super().__init__(descriptor, ctx)
        self._backend = backend
        self.reader = reader
        self._card_present = False
        self._atr = b""
        self._busy = asyncio.Lock()
        self._closed = False
        self._gone = False
        self._reads = 0
        self._failures = 0
        self._cards_seen = 0
        self._last_error = ""
        self._last_extended_length: bool | None = None
        self._extended_for: tuple[tuple[int, bytes], bool] | None = None
        #: The PC/SC context this reader's reads connect through, kept between reads.
        self._pcsc_context = PcscContext()

    # -- contract --------------------------------------------------------------------------------

    def capabilities(self) -> Capabilities:
        features = set(_FEATURES)
        if self._last_extended_length:
            features.add("extended_length")
        if is_sam_slot(self.reader):
            features.add("sam_slot")
        return Capabilities(features=frozenset(features))

    def health(self) -> DeviceHealth:
        conditions: tuple[Condition, ...] = ()
        if self._gone:
            state = DeviceState.GONE
        elif not self._backend.service_available:
            state = DeviceState.ERROR
            conditions = (Condition("pcscd-unavailable", Severity.ERROR,
                                    "the PC/SC service (pcscd) is not reachable"),)
        elif self._busy.locked():
            state = DeviceState.BUSY
        else:
            state = DeviceState.READY
        counters = {"reads": self._reads, "read_failures": self._failures,
                    "cards_inserted": self._cards_seen}
        return DeviceHealth(state=state, conditions=conditions, counters=counters,
                            last_error=self._last_error)

    async def open(self) -> None:
        if self._gone:
            raise DeviceUnavailableError("the reader was unplugged", reason="READER_GONE")
        self._closed = False

    async def close(self) -> None:
        self._closed = True
        if not self._busy.locked():  # else the read in progress releases it when it ends
            await self._ctx.run_blocking(self._pcsc_context.discard)

    def card_present(self) -> bool:
        return self._card_present

    async def read_card(self, key: AccessKey, options: ReadOptions) -> CardRead:
        device_id = self.descriptor.stable_key
        if self._gone or self._closed:
            raise DeviceUnavailableError("the reader is not available", reason="READER_GONE")
        if not self._backend.service_available:
            raise DeviceUnavailableError("the PC/SC service (pcscd) is not running",
                                         reason="PCSC_UNAVAILABLE")
        if not self._card_present:
            raise DeviceStateError("no card on the reader", reason="NO_CARD")
        if self._busy.locked():
            raise DeviceBusyError("the reader is already reading a card")
        try:
            async with self._busy:
                self._ctx.health_changed(self)  # now BUSY
                try:
                    result = await self._read(key, options, device_id)
                except AgentError as error:
                    self._failures += 1
                    self._last_error = f"{error.reason}: {error.message}"
                    raise
                self._reads += 1
                self._last_error = ""
        finally:
            if self._retired():
                await self._ctx.run_blocking(self._pcsc_context.discard)
            self._ctx.health_changed(self)  # READY again (or ERROR if pcscd left meanwhile)
        return result

    # -- internals -------------------------------------------------------------------------------

    async def _read(self, key: AccessKey, options: ReadOptions, device_id: str) -> CardRead:
        """Run the whole read in one worker thread (see :meth:`_read_blocking`).

        Cancellation sets a flag the transport checks before every APDU; the read stops at
        the next command boundary, resets the card, and only then is CancelledError re-raised.
        """
        trust = await self._backend.trust_store()
        cancelled = threading.Event()
        work = asyncio.ensure_future(
            self._ctx.run_blocking(self._read_blocking, key, options, trust, device_id, cancelled))
        try:
            result: CardRead = await asyncio.shield(work)
        except asyncio.CancelledError:
            cancelled.set()
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(work, timeout=10)
            raise
        return result

    def _read_blocking(self, key: AccessKey, options: ReadOptions, trust: TrustStore, device_id: str,
                       cancelled: threading.Event) -> CardRead:
        """Connect, read, verify and disconnect, all in this worker thread.

        The ICAO session is asyncio code; it runs on a private event loop here, with a
        transport that calls SCardTransmit directly. One thread hop per read instead of one
        per APDU, and the secure-messaging and signature work stays off the agent's loop.
        """
        from agent.drivers.idcard.session import read_document

        connection = self._backend.connection_factory(self.reader, device_id=device_id,
                                                      context=self._pcsc_context).open()
        reset = True
        try:
            # Decided once per card on the reader: the probe and the part-10 query cost
            # round trips that a second read of the same card does not need.
            insertion = (self._cards_seen, connection.atr)
            if self._extended_for is not None and self._extended_for[0] == insertion:
                extended = self._extended_for[1]
            else:
                extended = self._extended_length(connection)
                self._extended_for = (insertion, extended)
            self._last_extended_length = extended
            transport = PcscTransport(connection, None, extended_length=extended, cancelled=cancelled)
            result = _worker_loop().run_until_complete(read_document(transport, key, options, trust))
            reset = False
            return result
        except DeviceUnavailableError:
            # The card (or pcscd) is gone: a reset would fail, and with vpcd a failed reset
            # leaves pcscd believing the slot empty until the card is pulled once more.
            reset = False
            raise
        finally:
            # After a failed or cancelled read, reset the card: no half-open secure channel.
            connection.close(reset=reset)

    def _extended_length(self, connection: PcscCardConnection) -> bool:
        """Blocking: the backend's policy, the reader's part-10 answer, the ATR, or a probe."""
        policy = self._backend.extended_length_policy
        if policy != "auto":
            return choose_extended_length(policy, None, None)
        if connection.protocol == PROTOCOL_T0:
            return False  # T=0 carries no extended-length APDU (it would need ENVELOPE chains)
        reader_max = connection.reader_max_apdu_data()
        atr_says = atr_extended_length(connection.atr)
        if reader_max is None and atr_says is None:
            # Neither the reader nor the card says: try one harmless extended command.
            return connection.probe_extended_length()
        return choose_extended_length(policy, reader_max, atr_says)

    def card_changed(self, present: bool, atr: bytes, *, announce: bool) -> None:
        """Called by the backend on the event loop when the watcher saw the card come or go."""
        if present == self._card_present and atr == self._atr:
            return
        self._card_present, self._atr = present, atr
        if present:
            self._cards_seen += 1
        if announce:
            kind = EventKind.CARD_INSERTED if present else EventKind.CARD_REMOVED
            self._ctx.emit(self, kind, {"reader": self.descriptor.name})
        self._ctx.health_changed(self)  # the listed card presence follows

    def _retired(self) -> bool:
        """Closed or unplugged (either may happen while a read is in progress)."""
        return self._closed or self._gone

    def mark_gone(self) -> None:
        """The reader was unplugged: no more reads; its kept PC/SC context is released (by the
        read in progress when it ends, else right away in a worker thread)."""
        self._gone = True
        self._card_present = False
        if not self._busy.locked():
            asyncio.get_running_loop().run_in_executor(None, self._pcsc_context.discard)


class PcscBackend(DeviceBackend):
    """Chip ID-card readers through pcscd."""

    name = BACKEND_NAME
    family = DeviceFamily.IDCARD

    def __init__(self, ctx: DriverContext, options: BackendOptions) -> None:
        super().__init__(ctx, options)
        opts = typed_options(PcscOptions, options)
        self.extended_length_policy = cast(ExtendedLengthPolicy, opts.extended_length)
        self._csca_dir = Path(opts.csca_dir) if opts.csca_dir else None
        self._trust: TrustStore | None = None
        self._trust_lock = asyncio.Lock()
        self._watcher: PcscWatcher | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._devices: dict[str, PcscIdCardReader] = {}  # by PC/SC reader name
        self.service_available = False
        #: Builds card connections; a seam for the replay benchmark, which records the APDUs.
        self.connection_factory: type[PcscCardConnection] = PcscCardConnection

    # -- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        if self._watcher is not None:
            return
        if self._csca_dir is not None and not self._csca_dir.is_dir():
            raise ConfigError(f"drivers.pcsc.csca_dir {str(self._csca_dir)!r} is not a directory")
        loop = asyncio.get_running_loop()
        self._loop = loop

        def deliver(event: WatchEvent) -> None:  # runs in the watcher thread
            loop.call_soon_threadsafe(self._on_event, event)

        self._watcher = PcscWatcher(deliver, logger=self._ctx.logger)
        self._watcher.start()

    async def stop(self) -> None:
        watcher, self._watcher = self._watcher, None
        if watcher is not None:
            await self._ctx.run_blocking(watcher.stop)
        devices, self._devices = list(self._devices.values()), {}
        for device in devices:
            await device.close()

    def service_problem(self) -> str:
        watcher = self._watcher
        if watcher is not None and watcher.service_available is False:  # None: not tried yet
            return "the PC/SC service (pcscd) is not reachable"
        return ""

    async def trust_store(self) -> TrustStore:
        """The CSCA store of ``csca_dir``, loaded once (off the event loop) on first use, with the
        gateway's trust bundle added when the agent has one."""
        from agent.drivers.idcard.trust_store import TrustStore

        async with self._trust_lock:
            if self._trust is None:
                if self._csca_dir is None:
                    self._trust = TrustStore()
                else:
                    self._trust = await self._ctx.run_blocking(TrustStore.from_directory, self._csca_dir)
            local = self._trust
        distributed = self._ctx.distributed_trust()
        return distributed.with_local(local) if distributed is not None else local

    def devices(self) -> Mapping[str, PcscIdCardReader]:
        """Readers currently known, by PC/SC reader name."""
        return dict(self._devices)

    # -- watcher events (on the event loop) ------------------------------------------------------

    def _on_event(self, event: WatchEvent) -> None:
        if self._watcher is None:
            return  # stopped; late events from the thread are dropped
        if isinstance(event, ServiceChanged):
            self.service_available = event.available
            for known in self._devices.values():
                self._ctx.health_changed(known)
        elif isinstance(event, ReaderAppeared):
            self._reader_appeared(event.reader)
        elif isinstance(event, ReaderVanished):
            gone = self._devices.pop(event.reader, None)
            if gone is not None:
                gone.mark_gone()
                self._ctx.device_lost(DeviceFamily.IDCARD, BACKEND_NAME, gone.descriptor.stable_key,
                                      reason="reader removed")
        elif isinstance(event, CardInserted):
            device = self._devices.get(event.reader)
            if device is not None:
                device.card_changed(True, event.atr, announce=not event.initial)
        elif isinstance(event, CardRemoved):
            device = self._devices.get(event.reader)
            if device is not None:
                device.card_changed(False, b"", announce=True)

    def _reader_appeared(self, reader: str) -> None:
        key = reader_stable_key(reader)
        if any(known.descriptor.stable_key == key for known in self._devices.values()):
            key = f"{key}#{reader_index(reader)}"
        descriptor = DeviceDescriptor(
            family=DeviceFamily.IDCARD, backend=BACKEND_NAME, stable_key=key, name=reader,
            connection="pcsc", address=reader)
        device = PcscIdCardReader(descriptor, self._ctx, self, reader)
        self._devices[reader] = device
        self._ctx.device_found(device)
