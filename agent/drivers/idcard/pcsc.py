"""PC/SC on pyscard's low-level ``smartcard.scard`` API: card connections and the transport.

pyscard's high-level classes are not used: their monitor threads die for good when
pcscd restarts, and their exceptions carry no stable codes. Here every PC/SC return
code goes through :func:`pcsc_error`, the one place that turns PC/SC failures into
:mod:`agent.errors` types (see the table there).

A :class:`PcscCardConnection` is blocking and owns its own PC/SC context: pcsc-lite
serialises calls per context, so the watcher's long ``SCardGetStatusChange`` (in
:mod:`agent.drivers.idcard.pcsc_watch`) must not share one with card I/O. A
:class:`PcscTransport` is the :class:`~agent.drivers.idcard.transport.CardTransport`
the ICAO 9303 code talks to; each APDU runs through ``DriverContext.run_blocking``.

Nothing here logs or keeps APDU contents: they carry personal data.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any, Final, Literal, TypeVar

from smartcard import scard

from agent.errors import (
    AgentError,
    CardRemovedError,
    CardTimeoutError,
    DeviceBusyError,
    DeviceGoneError,
    DeviceProtocolError,
    DeviceStateError,
    DeviceUnavailableError,
    OperationCancelledError,
)

T = TypeVar("T")

#: ``run_blocking`` of the driver context (or any awaitable-returning equivalent).
RunBlocking = Callable[..., Awaitable[Any]]

# -- PC/SC return codes (pcsc-lite ``pcsclite.h``), as unsigned 32-bit values ---------------------
SUCCESS: Final = 0x00000000
E_CANCELLED: Final = 0x80100002
E_INVALID_HANDLE: Final = 0x80100003
E_INSUFFICIENT_BUFFER: Final = 0x80100008
E_UNKNOWN_READER: Final = 0x80100009
E_TIMEOUT: Final = 0x8010000A
E_SHARING_VIOLATION: Final = 0x8010000B
E_NO_SMARTCARD: Final = 0x8010000C
E_PROTO_MISMATCH: Final = 0x8010000F
F_COMM_ERROR: Final = 0x80100013
E_NOT_TRANSACTED: Final = 0x80100016
E_READER_UNAVAILABLE: Final = 0x80100017
E_NO_SERVICE: Final = 0x8010001D
E_SERVICE_STOPPED: Final = 0x8010001E
E_UNSUPPORTED_FEATURE: Final = 0x8010001F
E_NO_READERS_AVAILABLE: Final = 0x8010002E
E_COMM_DATA_LOST: Final = 0x8010002F
W_UNRESPONSIVE_CARD: Final = 0x80100066
W_UNPOWERED_CARD: Final = 0x80100067
W_RESET_CARD: Final = 0x80100068
W_REMOVED_CARD: Final = 0x80100069

#: pcscd is gone or was restarted under this context: the context must be re-established.
SERVICE_LOST: Final = frozenset({E_NO_SERVICE, E_SERVICE_STOPPED, F_COMM_ERROR, E_INVALID_HANDLE})
#: The card left mid-exchange (seen with vpcd and CCID readers alike).
CARD_LOST: Final = frozenset({E_NOT_TRANSACTED, W_REMOVED_CARD, E_COMM_DATA_LOST})
#: A card that was just (re)inserted and is not powered yet: connecting again shortly works.
CARD_SETTLING: Final = frozenset({W_UNPOWERED_CARD, W_RESET_CARD})

PROTOCOL_T0: Final = scard.SCARD_PROTOCOL_T0
PROTOCOL_T1: Final = scard.SCARD_PROTOCOL_T1

#: PC/SC part 10: ``CM_IOCTL_GET_FEATURE_REQUEST`` and the TLV-properties feature.
_IOCTL_GET_FEATURE_REQUEST: Final = scard.SCARD_CTL_CODE(3400)
_FEATURE_GET_TLV_PROPERTIES: Final = 0x12
_PROPERTY_MAX_APDU_DATA_SIZE: Final = 0x0A
#: READ BINARY, offset 0, extended Le = 1 (see :meth:`PcscCardConnection.probe_extended_length`).
_EXTENDED_PROBE: Final = bytes.fromhex("00B00000000001")
#: The largest data field of a short APDU is 255 (Lc) / 256 (Le).
SHORT_APDU_DATA: Final = 256

ExtendedLengthPolicy = Literal["auto", "always", "never"]


def unsigned(hresult: int) -> int:
    """pyscard returns codes as C ``long``: normalise to the unsigned 32-bit value."""
    return hresult & 0xFFFFFFFF


def describe(hresult: int) -> str:
    """``0x80100016 Transaction failed.`` (pcsc-lite's text; no card data in it)."""
    code = unsigned(hresult)
    return f"0x{code:08X} {scard.SCardGetErrorMessage(code)}".strip()


def pcsc_error(hresult: int, operation: str, *, device_id: str | None = None) -> AgentError:
    """Map a failed PC/SC call to the agent's error type.

    ===============================================  ==================================
    PC/SC code                                       agent error (reason)
    ===============================================  ==================================
    NOT_TRANSACTED, REMOVED_CARD, COMM_DATA_LOST     CardRemovedError (CARD_REMOVED)
    UNPOWERED_CARD, RESET_CARD                       DeviceUnavailableError (CARD_UNPOWERED /
                                                     CARD_RESET), retryable
    UNRESPONSIVE_CARD                                DeviceStateError (CARD_UNRESPONSIVE)
    NO_SMARTCARD                                     DeviceStateError (NO_CARD)
    NO_SERVICE, SERVICE_STOPPED, COMM_ERROR,         DeviceUnavailableError (PCSC_UNAVAILABLE)
    INVALID_HANDLE
    UNKNOWN_READER, READER_UNAVAILABLE,              DeviceGoneError (READER_GONE)
    NO_READERS_AVAILABLE
    SHARING_VIOLATION                                DeviceBusyError
    TIMEOUT                                          CardTimeoutError
    anything else                                    DeviceProtocolError
    ===============================================  ==================================
    """
    code = unsigned(hresult)
    message = f"{operation} failed: PC/SC {describe(code)}"
    if code in CARD_LOST:
        return CardRemovedError(message, device_id=device_id)
    if code == W_UNPOWERED_CARD:
        return DeviceUnavailableError(message, reason="CARD_UNPOWERED", device_id=device_id)
    if code == W_RESET_CARD:
        return DeviceUnavailableError(message, reason="CARD_RESET", device_id=device_id)
    if code == W_UNRESPONSIVE_CARD:
        return DeviceStateError(message, reason="CARD_UNRESPONSIVE", device_id=device_id)
    if code == E_NO_SMARTCARD:
        return DeviceStateError(message, reason="NO_CARD", device_id=device_id)
    if code in SERVICE_LOST:
        return DeviceUnavailableError(message, reason="PCSC_UNAVAILABLE", device_id=device_id)
    if code in (E_UNKNOWN_READER, E_READER_UNAVAILABLE, E_NO_READERS_AVAILABLE):
        return DeviceGoneError(message, reason="READER_GONE", device_id=device_id)
    if code == E_SHARING_VIOLATION:
        return DeviceBusyError(message, device_id=device_id)
    if code == E_TIMEOUT:
        return CardTimeoutError(message, device_id=device_id)
    return DeviceProtocolError(message, device_id=device_id)


# -- ATR ------------------------------------------------------------------------------------------

def atr_historical_bytes(atr: bytes) -> bytes:
    """The historical bytes of an ISO 7816-3 ATR (empty if the ATR is malformed)."""
    if len(atr) < 2:
        return b""
    t0 = atr[1]
    count = t0 & 0x0F
    y = t0 >> 4
    index = 2
    while True:
        td: int | None = None
        for bit in (0x1, 0x2, 0x4, 0x8):  # TA, TB, TC, TD present?
            if y & bit:
                if index >= len(atr):
                    return b""
                if bit == 0x8:
                    td = atr[index]
                index += 1
        if td is None:
            break
        y = td >> 4
    historical = atr[index:index + count]
    return historical if len(historical) == count else b""


def atr_extended_length(atr: bytes) -> bool | None:
    """What the ATR says about extended Lc/Le: True, False, or None when it does not say.

    ISO 7816-4 compact-TLV in the historical bytes (category indicator ``00`` or ``80``):
    the *card capabilities* object (tag 7) carries in its third byte bit b7 (``0x40``)
    "extended Lc and Le fields".
    """
    historical = atr_historical_bytes(atr)
    if not historical or historical[0] not in (0x00, 0x80):
        return None
    # With category 00 the last three bytes are a status indicator, not TLV.
    body = historical[1:-3] if historical[0] == 0x00 else historical[1:]
    index = 0
    while index < len(body):
        tag, length = body[index] >> 4, body[index] & 0x0F
        value = body[index + 1:index + 1 + length]
        if len(value) < length:
            return None
        if tag == 0x7 and length >= 3:
            return bool(value[2] & 0x40)
        index += 1 + length
    return None


def parse_tlv_properties(data: bytes) -> dict[int, int]:
    """PC/SC part 10 ``FEATURE_GET_TLV_PROPERTIES`` answer: tag, length, little-endian value."""
    properties: dict[int, int] = {}
    index = 0
    while index + 2 <= len(data):
        tag, length = data[index], data[index + 1]
        value = data[index + 2:index + 2 + length]
        if len(value) < length:
            break
        properties[tag] = int.from_bytes(value, "little")
        index += 2 + length
    return properties


def choose_extended_length(policy: ExtendedLengthPolicy, reader_max_data: int | None,
                           atr_says: bool | None) -> bool:
    """Decide whether this reader/card path takes extended-length APDUs.

    ``auto``: a reader that reports ``dwMaxAPDUDataSize`` decides (0 or <= 256 means short
    only); a card whose ATR forbids it loses; otherwise the ATR's word is taken, and with no
    information at all short APDUs are used, which every reader and card accepts.
    """
    if policy == "never":
        return False
    if policy == "always":
        return True
    if reader_max_data is not None and reader_max_data <= SHORT_APDU_DATA:
        return False
    if atr_says is False:
        return False
    return bool(atr_says) or (reader_max_data is not None and reader_max_data > SHORT_APDU_DATA)


# -- a card connection (blocking; call through run_blocking) -------------------------------------

class PcscContext:
    """A PC/SC context kept from one card connection of a reader to the next.

    Establishing and releasing a context are two round trips to pcscd, about half a
    millisecond of every read; a reader keeps one instead. It is used by one connection at a
    time (the reader reads one card at a time), never by two threads at once. When pcscd was
    restarted under it, :meth:`PcscCardConnection.open` drops it and establishes a new one.
    """

    def __init__(self) -> None:
        self._handle: Any = None
        self._lock = threading.Lock()

    def handle(self, device_id: str | None) -> Any:
        """The context, established first if needed (raises :func:`pcsc_error`'s errors)."""
        with self._lock:
            if self._handle is None:
                hresult, handle = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
                if unsigned(hresult) != SUCCESS:
                    raise pcsc_error(hresult, "establishing a PC/SC context", device_id=device_id)
                self._handle = handle
            return self._handle

    def discard(self) -> None:
        """Release the context (if any); the next :meth:`handle` establishes a new one."""
        with self._lock:
            handle, self._handle = self._handle, None
        if handle is not None:
            scard.SCardReleaseContext(handle)


class PcscCardConnection:
    """A shared-mode connection to the card in one reader, inside a PC/SC transaction.

    Holds its own context, or borrows the reader's kept :class:`PcscContext`. Blocking:
    every method is meant for a worker thread.
    """

    #: How long :meth:`open` keeps retrying while a just-inserted card is still powering up.
    settle_timeout: float = 1.0

    def __init__(self, reader: str, *, device_id: str | None = None, context: PcscContext | None = None) -> None:
        self.reader = reader
        self.device_id = device_id
        self._kept_context = context
        self.protocol = 0
        self.atr = b""
        self._context: Any = None
        self._card: Any = None
        self._in_transaction = False
        # A cancelled read may close the connection while a worker thread is still inside
        # SCardTransmit: the lock keeps the handle alive until that exchange returns.
        self._io = threading.Lock()

    def _check(self, hresult: int, operation: str) -> None:
        if unsigned(hresult) != SUCCESS:
            raise pcsc_error(hresult, operation, device_id=self.device_id)

    def open(self) -> PcscCardConnection:
        """Establish (or borrow) a context, connect (T=1 or T=0), begin a transaction, read
        the ATR. A borrowed context that pcscd no longer knows (it was restarted) is
        discarded and the connection is tried once more with a fresh one."""
        kept = self._kept_context
        if kept is None:
            hresult, self._context = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
            if unsigned(hresult) != SUCCESS:
                self._context = None
                raise pcsc_error(hresult, "establishing a PC/SC context", device_id=self.device_id)
        else:
            self._context = kept.handle(self.device_id)
        try:
            code = self._connect()
            if code in SERVICE_LOST and kept is not None:
                kept.discard()
                self._context = kept.handle(self.device_id)
                code = self._connect()
            self._check(code, "connecting to the card")
            self._check(scard.SCardBeginTransaction(self._card), "starting a card transaction")
            self._in_transaction = True
            hresult, _reader, _state, _protocol, atr = scard.SCardStatus(self._card)
            self._check(hresult, "reading the card status")
            self.atr = bytes(atr)
        except BaseException:
            self.close(reset=True)
            raise
        return self

    def _connect(self) -> int:
        """SCardConnect, retried while a just-inserted card is still powering up; the code."""
        deadline = time.monotonic() + self.settle_timeout
        while True:
            hresult, card, protocol = scard.SCardConnect(
                self._context, self.reader, scard.SCARD_SHARE_SHARED,
                scard.SCARD_PROTOCOL_T1 | scard.SCARD_PROTOCOL_T0)
            code = unsigned(hresult)
            if code in CARD_SETTLING and time.monotonic() < deadline:
                time.sleep(0.05)  # re-inserted too fast: pcscd is still powering the card
                continue
            if code == SUCCESS:
                self._card, self.protocol = card, protocol
            return code

    def transmit(self, apdu: bytes) -> bytes:
        """One raw exchange: the card's answer including SW1 SW2."""
        with self._io:
            if self._card is None:
                raise CardRemovedError("the card connection is closed", device_id=self.device_id)
            hresult, response = scard.SCardTransmit(self._card, self.protocol, list(apdu))
        self._check(hresult, "sending a command to the card")
        if len(response) < 2:
            # vpcd answers an APDU the card never answered with zero bytes; a contact reader
            # does the same when the card is pulled between command and response.
            raise CardRemovedError("the card stopped answering (was it removed?)",
                                   device_id=self.device_id)
        return bytes(response)

    def reader_max_apdu_data(self) -> int | None:
        """``dwMaxAPDUDataSize`` from the reader's part-10 TLV properties, None if not offered."""
        if self._card is None:
            return None
        hresult, features = scard.SCardControl(self._card, _IOCTL_GET_FEATURE_REQUEST, [])
        if unsigned(hresult) != SUCCESS:
            return None
        raw = bytes(features)
        control_code: int | None = None
        for index in range(0, len(raw) - 5, 6):  # tag(1) length(1)=4 value(4, big-endian)
            if raw[index] == _FEATURE_GET_TLV_PROPERTIES and raw[index + 1] == 4:
                control_code = int.from_bytes(raw[index + 2:index + 6], "big")
        if control_code is None:
            return None
        hresult, answer = scard.SCardControl(self._card, control_code, [])
        if unsigned(hresult) != SUCCESS:
            return None
        return parse_tlv_properties(bytes(answer)).get(_PROPERTY_MAX_APDU_DATA_SIZE)

    def probe_extended_length(self) -> bool:
        """Ask the reader path whether it carries an extended-length command at all.

        For readers that publish no part-10 properties behind cards whose ATR says nothing.
        Sent before any authentication, so it disturbs no secure channel: a READ BINARY of
        the current EF with a 1-byte Le in extended form. A card that does not parse the
        form answers ``67xx``; a reader that cannot carry it fails the exchange. Any other
        answer (``6986`` no current EF, ``6A82``, data...) means it came through.
        """
        try:
            response = self.transmit(_EXTENDED_PROBE)
        except CardRemovedError:
            raise
        except AgentError:
            return False
        return response[-2] != 0x67

    def close(self, *, reset: bool = False) -> None:
        """End the transaction, disconnect, release the context. Never raises.

        ``reset`` powers the card down and up again (after a failed or cancelled read, so the
        next reader of the card starts from a clean state, without half a secure channel).
        """
        disposition = scard.SCARD_RESET_CARD if reset else scard.SCARD_LEAVE_CARD
        with self._io:
            self._close(disposition)

    def _close(self, disposition: int) -> None:
        if self._card is not None:
            if self._in_transaction:
                scard.SCardEndTransaction(self._card, scard.SCARD_LEAVE_CARD)
                self._in_transaction = False
            scard.SCardDisconnect(self._card, disposition)
            self._card = None
        if self._context is not None and self._kept_context is None:
            scard.SCardReleaseContext(self._context)
        self._context = None


# -- the async transport the ICAO 9303 code uses -------------------------------------------------

class PcscTransport:
    """:class:`~agent.drivers.idcard.transport.CardTransport` over a :class:`PcscCardConnection`.

    With ``run_blocking`` each APDU runs in a worker thread; with None the exchange is made
    in the calling thread (the reader runs a whole read in one worker thread on a private
    loop). ``cancelled``, when set, stops the read before the next command with
    :class:`~agent.errors.OperationCancelledError`.

    Handles ``61xx`` (GET RESPONSE) and, on T=0, ``6Cxx`` (re-send with the right Le).
    ``extended_length`` starts from :func:`choose_extended_length` and drops to False when
    an extended-length command comes back ``6700`` (wrong length) so callers fall back to
    short reads.
    """

    def __init__(self, connection: PcscCardConnection, run_blocking: RunBlocking | None, *,
                 extended_length: bool, cancelled: threading.Event | None = None) -> None:
        self._connection = connection
        self._run_blocking = run_blocking
        self._extended_length = extended_length
        self._cancelled = cancelled
        self.apdus_sent = 0

    @property
    def extended_length(self) -> bool:
        return self._extended_length

    @property
    def atr(self) -> bytes:
        return self._connection.atr

    async def transmit(self, apdu: bytes) -> bytes:
        if self._cancelled is not None and self._cancelled.is_set():
            raise OperationCancelledError("the card read was cancelled", device_id=self._connection.device_id)
        if self._run_blocking is None:
            return self._exchange(bytes(apdu))
        response: bytes = await self._run_blocking(self._exchange, bytes(apdu))
        return response

    def _exchange(self, apdu: bytes) -> bytes:
        """Blocking: one command with its GET RESPONSE / re-send follow-ups."""
        connection = self._connection
        self.apdus_sent += 1
        response = connection.transmit(apdu)
        sw1, sw2 = response[-2], response[-1]
        if sw1 == 0x6C and connection.protocol == scard.SCARD_PROTOCOL_T0 and len(apdu) == 5:
            self.apdus_sent += 1  # T=0 case 2: the card names the Le it wants
            response = connection.transmit(apdu[:4] + bytes([sw2]))
            sw1, sw2 = response[-2], response[-1]
        data = bytearray(response[:-2])
        while sw1 == 0x61:
            self.apdus_sent += 1
            response = connection.transmit(bytes([apdu[0] & 0x03, 0xC0, 0x00, 0x00, sw2]))
            data += response[:-2]
            sw1, sw2 = response[-2], response[-1]
        if (sw1, sw2) == (0x67, 0x00) and is_extended_apdu(apdu):
            self._extended_length = False
        return bytes(data) + bytes([sw1, sw2])


def is_extended_apdu(apdu: bytes) -> bool:
    """Whether a command APDU uses the extended-length encoding (ISO 7816-4 5.1)."""
    return len(apdu) >= 7 and apdu[4] == 0x00
