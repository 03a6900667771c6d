"""Watch pcscd for readers and cards: our own ``SCardGetStatusChange`` loop in a thread.

Why not pyscard's ``CardMonitor``/``ReaderMonitor``: their threads die when pcscd
restarts and never resume (TESTBED.md). This loop survives that: any failure of the
context (``0x8010001D`` service not available, ``0x80100013`` RPC transport error after
a restart...) drops it and re-establishes a new one, retrying with a capped backoff
(0.1 s growing to 0.5 s) while pcscd is away, so a reader is back well within 2 s of
pcscd's return.

One blocking wait covers every reader plus the ``\\\\?PnP?\\Notification`` pseudo-reader,
so reader hotplug and card insert/remove both wake it with no polling; the wait also
times out every ``wait_timeout`` seconds as a safety net (pcsc-lite 1.9 only signals a
reader-count change that happens *during* the call). :meth:`PcscWatcher.stop` wakes it
with ``SCardCancel``.

Events are delivered by calling ``on_event`` *in the watcher thread*; the backend hands
them to its event loop with ``call_soon_threadsafe``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from smartcard import scard

from agent.drivers.idcard.pcsc import (
    E_CANCELLED,
    E_NO_READERS_AVAILABLE,
    E_READER_UNAVAILABLE,
    E_TIMEOUT,
    E_UNKNOWN_READER,
    SUCCESS,
    describe,
    unsigned,
)

PNP_READER: Final = "\\\\?PnP?\\Notification"

_log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ServiceChanged:
    """pcscd became reachable (``available``) or stopped being so; ``detail`` is the PC/SC code."""

    available: bool
    detail: str = ""


@dataclass(frozen=True, slots=True)
class ReaderAppeared:
    reader: str


@dataclass(frozen=True, slots=True)
class ReaderVanished:
    reader: str


@dataclass(frozen=True, slots=True)
class CardInserted:
    """A card is on ``reader``. ``initial`` marks a card already there when the reader was found."""

    reader: str
    atr: bytes
    initial: bool = False


@dataclass(frozen=True, slots=True)
class CardRemoved:
    reader: str


WatchEvent = ServiceChanged | ReaderAppeared | ReaderVanished | CardInserted | CardRemoved


@dataclass(slots=True)
class _ReaderTrack:
    state: int = scard.SCARD_STATE_UNAWARE  # what we pass back as dwCurrentState
    present: bool = False
    counter: int = -1  # pcsc-lite's card event counter (upper 16 bits); -1 = not seen yet
    seen: bool = False  # got at least one answer for it (on this context)
    fresh: bool = True  # never answered since the reader appeared


class PcscWatcher:
    """Runs the status-change loop in a dedicated daemon thread."""

    def __init__(self, on_event: Callable[[WatchEvent], None], *, wait_timeout: float = 2.0,
                 retry_initial: float = 0.1, retry_max: float = 0.5,
                 logger: logging.Logger | None = None) -> None:
        self._on_event = on_event
        self._wait_ms = int(wait_timeout * 1000)
        self._retry_initial = retry_initial
        self._retry_max = retry_max
        self._log = logger or _log
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._context: Any = None
        self._thread: threading.Thread | None = None
        self._readers: dict[str, _ReaderTrack] = {}
        self._service: bool | None = None  # unknown until the first attempt
        self._pnp_state = scard.SCARD_STATE_UNAWARE
        self._pnp_supported = True

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name="pcsc-watch", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Wake the loop with ``SCardCancel`` and wait for the thread. Blocking; idempotent."""
        thread = self._thread
        if thread is None:
            return
        self._stopping.set()
        waited = 0.0
        while thread.is_alive() and waited < timeout:
            # Repeat the cancel: it only interrupts a wait that is already in progress.
            with self._lock:
                if self._context is not None:
                    scard.SCardCancel(self._context)
            thread.join(0.05)
            waited += 0.05
        self._thread = None

    @property
    def service_available(self) -> bool | None:
        return self._service

    # -- the loop --------------------------------------------------------------------------------

    def _emit(self, event: WatchEvent) -> None:
        try:
            self._on_event(event)
        except Exception:  # a consumer bug must not end the watch
            self._log.exception("pcsc watcher: event consumer failed")

    def _set_service(self, available: bool, detail: str = "") -> None:
        if self._service is available:
            return
        self._service = available
        if available:
            self._log.info("pcscd reachable")
        else:
            self._log.warning("pcscd not reachable (%s); retrying in the background", detail)
        self._emit(ServiceChanged(available, detail))

    def _drop_context(self) -> None:
        with self._lock:
            context, self._context = self._context, None
        if context is not None:
            scard.SCardReleaseContext(context)
        # A new context starts from "unaware" for every reader; presence is kept to diff against.
        for track in self._readers.values():
            track.state = scard.SCARD_STATE_UNAWARE
            track.seen = False
            track.counter = -1
        self._pnp_state = scard.SCARD_STATE_UNAWARE

    def _run(self) -> None:
        retry = self._retry_initial
        try:
            while not self._stopping.is_set():
                if self._context is None:
                    hresult, context = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
                    if unsigned(hresult) != SUCCESS:
                        self._set_service(False, describe(hresult))
                        self._stopping.wait(retry)
                        retry = min(retry * 1.5, self._retry_max)
                        continue
                    with self._lock:
                        self._context = context
                if not self._cycle():
                    self._drop_context()
                    # A fresh context is tried at once (pcscd restarted under us), but a failure
                    # that persists must not turn into a busy loop.
                    self._stopping.wait(self._retry_initial / 4)
                    continue
                retry = self._retry_initial
        finally:
            self._drop_context()

    def _cycle(self) -> bool:
        """List readers, wait for a change, report it. False when the context is unusable."""
        hresult, names = scard.SCardListReaders(self._context, [])
        code = unsigned(hresult)
        if code == E_NO_READERS_AVAILABLE:
            names = []
        elif code != SUCCESS:
            self._log.debug("pcsc watcher: listing readers failed: %s", describe(code))
            return False
        self._set_service(True)
        self._reconcile(list(names))

        request = [(PNP_READER, self._pnp_state)] if self._pnp_supported else []
        request += [(name, track.state) for name, track in self._readers.items()]
        if not request:  # no PnP support and no reader: nothing to wait on but time
            self._stopping.wait(self._wait_ms / 1000)
            return True
        hresult, states = scard.SCardGetStatusChange(self._context, self._wait_ms, request)
        code = unsigned(hresult)
        if code in (E_TIMEOUT, E_CANCELLED):
            return True  # nothing changed / stop requested
        if code in (E_UNKNOWN_READER, E_READER_UNAVAILABLE):
            self._stopping.wait(self._retry_initial / 4)  # a reader is leaving: list again
            return True
        if code != SUCCESS:
            self._log.debug("pcsc watcher: waiting for changes failed: %s", describe(code))
            return False
        for name, event_state, atr in states:
            if name == PNP_READER:
                if event_state & scard.SCARD_STATE_UNKNOWN:
                    # A resource manager without the PnP pseudo-reader: new readers are then
                    # found by the periodic re-listing after each wait times out.
                    self._pnp_supported = False
                    self._log.info("pcscd has no PnP notification; new readers are polled for")
                self._pnp_state = event_state & ~scard.SCARD_STATE_CHANGED
                continue
            track = self._readers.get(name)
            if track is not None:
                self._update(name, track, event_state, bytes(atr))
        return True

    def _reconcile(self, names: list[str]) -> None:
        for name in [known for known in self._readers if known not in names]:
            track = self._readers.pop(name)
            if track.present:
                self._emit(CardRemoved(name))
            self._emit(ReaderVanished(name))
        for name in names:
            if name not in self._readers:
                self._readers[name] = _ReaderTrack()
                self._emit(ReaderAppeared(name))

    def _update(self, name: str, track: _ReaderTrack, event_state: int, atr: bytes) -> None:
        if event_state & (scard.SCARD_STATE_UNKNOWN | scard.SCARD_STATE_IGNORE):
            track.state = event_state & ~scard.SCARD_STATE_CHANGED  # so the next wait blocks
            return  # the reader went away; the next listing reports it
        present = bool(event_state & scard.SCARD_STATE_PRESENT)
        counter = (event_state >> 16) & 0xFFFF
        if track.seen and present and track.present and counter != track.counter:
            # Removed and put back between two wakes: report both edges.
            self._emit(CardRemoved(name))
            self._emit(CardInserted(name, atr))
        elif present and not track.present:
            self._emit(CardInserted(name, atr, initial=track.fresh))
        elif track.present and not present:
            self._emit(CardRemoved(name))
        track.present = present
        track.counter = counter
        track.seen = True
        track.fresh = False
        track.state = event_state & ~scard.SCARD_STATE_CHANGED
