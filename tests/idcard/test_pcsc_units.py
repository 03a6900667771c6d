"""Pure units of the PC/SC layer: error mapping, ATR parsing, extended-length choice, stable keys."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.drivers.idcard import pcsc
from agent.drivers.idcard.reader import is_sam_slot, reader_stable_key
from agent.errors import (
    CardRemovedError,
    CardTimeoutError,
    DeviceBusyError,
    DeviceGoneError,
    DeviceProtocolError,
    DeviceStateError,
    DeviceUnavailableError,
)
from tests.idcard.tiny_card import TinyCard


@pytest.mark.parametrize(("code", "error_type", "reason"), [
    (0x80100016, CardRemovedError, "CARD_REMOVED"),
    (0x80100069, CardRemovedError, "CARD_REMOVED"),
    (0x80100067, DeviceUnavailableError, "CARD_UNPOWERED"),
    (0x80100068, DeviceUnavailableError, "CARD_RESET"),
    (0x80100066, DeviceStateError, "CARD_UNRESPONSIVE"),
    (0x8010000C, DeviceStateError, "NO_CARD"),
    (0x8010001D, DeviceUnavailableError, "PCSC_UNAVAILABLE"),
    (0x80100013, DeviceUnavailableError, "PCSC_UNAVAILABLE"),
    (0x8010001E, DeviceUnavailableError, "PCSC_UNAVAILABLE"),
    (0x80100009, DeviceGoneError, "READER_GONE"),
    (0x80100017, DeviceGoneError, "READER_GONE"),
    (0x8010000B, DeviceBusyError, "DEVICE_BUSY"),
    (0x8010000A, CardTimeoutError, "CARD_TIMEOUT"),
    (0x80100001, DeviceProtocolError, "PROTOCOL_ERROR"),
])
def test_pcsc_codes_map_to_agent_errors(code: int, error_type: type[Exception], reason: str) -> None:
    error = pcsc.pcsc_error(code, "sending a command", device_id="dev-1")
    assert type(error) is error_type
    assert error.reason == reason
    assert error.device_id == "dev-1"
    assert f"0x{code:08X}" in error.message


def test_signed_codes_are_normalised() -> None:
    # pyscard may hand back the code as a negative C long
    assert pcsc.pcsc_error(0x80100016 - (1 << 32), "x").reason == "CARD_REMOVED"


def test_tiny_card_atr_says_extended_length() -> None:
    atr = TinyCard().power_on()
    assert pcsc.atr_historical_bytes(atr)[:2] == bytes.fromhex("0073")
    assert pcsc.atr_extended_length(atr) is True


def test_atr_without_card_capabilities_says_nothing() -> None:
    # 3B 88 80 01 + 8 historical bytes of category 80 with only a pre-issuing object (tag 6)
    historical = bytes.fromhex("8063" + "010203" + "0000" + "00")[:8]
    atr = bytes([0x3B, 0x88, 0x80, 0x01]) + historical
    assert pcsc.atr_extended_length(atr) is None


def test_atr_forbidding_extended_length() -> None:
    historical = bytes.fromhex("80 73 C8 00 13".replace(" ", ""))
    atr = bytes([0x3B, 0x85, 0x80, 0x01]) + historical
    assert pcsc.atr_extended_length(atr) is False


@given(st.binary(max_size=40))
def test_atr_parsers_never_crash(atr: bytes) -> None:
    historical = pcsc.atr_historical_bytes(atr)
    assert len(historical) <= 15
    assert pcsc.atr_extended_length(atr) in (True, False, None)


@given(st.binary(max_size=64))
def test_tlv_properties_parser_never_crashes(data: bytes) -> None:
    assert isinstance(pcsc.parse_tlv_properties(data), dict)


def test_tlv_properties_little_endian() -> None:
    # dwMaxAPDUDataSize (tag 0x0A) = 0x10000, wLcdLayout (tag 0x01) = 0
    data = bytes([0x0A, 4, 0x00, 0x00, 0x01, 0x00, 0x01, 2, 0, 0])
    assert pcsc.parse_tlv_properties(data) == {0x0A: 0x10000, 0x01: 0}


@pytest.mark.parametrize(("policy", "reader_max", "atr_says", "expected"), [
    ("never", 65536, True, False),
    ("always", 0, False, True),
    ("auto", 0, True, False),          # reader is short-APDU only
    ("auto", 261, None, True),         # part 10: 261..65544 means extended APDUs
    ("auto", 65536, False, False),     # card forbids it
    ("auto", 65536, None, True),       # reader decides
    ("auto", None, True, True),        # no reader info: the ATR's word
    ("auto", None, None, False),       # nothing known: short APDUs always work
])
def test_choose_extended_length(policy: pcsc.ExtendedLengthPolicy, reader_max: int | None,
                                atr_says: bool | None, expected: bool) -> None:
    assert pcsc.choose_extended_length(policy, reader_max, atr_says) is expected


@pytest.mark.parametrize(("apdu", "extended"), [
    ("00B0000000", False),
    ("00B00000000000", True),
    ("0CB0000000", False),
    ("0CB000000000100102030405060708090A0B0C0D0E0F000000", True),
    ("00A4040C07A0000002471001", False),
])
def test_is_extended_apdu(apdu: str, extended: bool) -> None:
    assert pcsc.is_extended_apdu(bytes.fromhex(apdu)) is extended


@pytest.mark.parametrize(("name", "key"), [
    ("Virtual PCD 00 00", "Virtual PCD/0"),
    ("Virtual PCD 01 01", "Virtual PCD/1"),
    ("ACS ACR1252 Dual Reader [ACR1252 Dual Reader PICC] (1234567) 00 00",
     "ACS ACR1252 Dual Reader [ACR1252 Dual Reader PICC] (1234567)/0"),
    ("ACS ACR1252 Dual Reader [ACR1252 Dual Reader PICC] (1234567) 02 00",
     "ACS ACR1252 Dual Reader [ACR1252 Dual Reader PICC] (1234567)/0"),
    ("Some reader without pcsc-lite numbering", "Some reader without pcsc-lite numbering"),
])
def test_reader_stable_key_drops_the_plug_order_counter(name: str, key: str) -> None:
    assert reader_stable_key(name) == key


@pytest.mark.parametrize(("name", "sam"), [
    ("ACS ACR1252 Dual Reader [ACR1252 Dual Reader SAM] 00 01", True),
    ("ACS ACR1281 1S Dual Reader [ACR1281 1S Dual Reader SAM] (1234) 00 02", True),
    ("ACS ACR1252 Dual Reader [ACR1252 Dual Reader PICC] 00 00", False),
    ("ACS ACR1281 1S Dual Reader [ACR1281 1S Dual Reader ICC] (1234) 00 00", False),
    ("Samsung SAMPLE reader 00 00", False),
    ("Virtual PCD 00 00", False),
])
def test_a_sam_slot_is_told_by_its_name(name: str, sam: bool) -> None:
    assert is_sam_slot(name) is sam


def test_watcher_reports_edges_swaps_and_initial_cards() -> None:
    from smartcard import scard

    from agent.drivers.idcard.pcsc_watch import (
        CardInserted,
        CardRemoved,
        PcscWatcher,
        ReaderAppeared,
        ReaderVanished,
        WatchEvent,
    )

    events: list[WatchEvent] = []
    watcher = PcscWatcher(events.append)
    present, empty = scard.SCARD_STATE_PRESENT, scard.SCARD_STATE_EMPTY
    watcher._reconcile(["R 00 00"])
    track = watcher._readers["R 00 00"]
    watcher._update("R 00 00", track, present | (1 << 16), b"\x3b")  # already there when found
    watcher._update("R 00 00", track, empty | (2 << 16), b"")
    watcher._update("R 00 00", track, present | (3 << 16), b"\x3b")
    watcher._update("R 00 00", track, present | (5 << 16), b"\x3b")  # out and back in between two waits
    watcher._update("R 00 00", track, present | (5 << 16), b"\x3b")  # nothing new
    watcher._reconcile([])
    assert events == [
        ReaderAppeared("R 00 00"),
        CardInserted("R 00 00", b"\x3b", initial=True),
        CardRemoved("R 00 00"),
        CardInserted("R 00 00", b"\x3b"),
        CardRemoved("R 00 00"),
        CardInserted("R 00 00", b"\x3b"),
        CardRemoved("R 00 00"),
        ReaderVanished("R 00 00"),
    ]


def test_watcher_survives_a_failing_consumer(caplog: pytest.LogCaptureFixture) -> None:
    from agent.drivers.idcard.pcsc_watch import PcscWatcher, ReaderAppeared

    def broken(_event: object) -> None:
        raise RuntimeError("consumer bug")

    watcher = PcscWatcher(broken)
    watcher._emit(ReaderAppeared("R 00 00"))  # logged, not raised
    assert "event consumer failed" in caplog.text


class _ScriptedConnection(pcsc.PcscCardConnection):
    """A connection whose card answers from a script (no pcscd): for the transport's follow-ups."""

    def __init__(self, answers: dict[bytes, bytes], protocol: int) -> None:
        super().__init__("scripted")
        self.answers = answers
        self.protocol = protocol
        self.sent: list[bytes] = []

    def transmit(self, apdu: bytes) -> bytes:
        self.sent.append(apdu)
        return self.answers[apdu]


async def test_transport_follows_61xx_with_get_response() -> None:
    connection = _ScriptedConnection({
        bytes.fromhex("00B0000000"): bytes.fromhex("01026104"),
        bytes.fromhex("00C0000004"): bytes.fromhex("030405066102"),
        bytes.fromhex("00C0000002"): bytes.fromhex("07089000"),
    }, pcsc.PROTOCOL_T1)
    transport = pcsc.PcscTransport(connection, None, extended_length=False)
    assert await transport.transmit(bytes.fromhex("00B0000000")) == bytes.fromhex("01020304050607089000")
    assert transport.apdus_sent == 3


async def test_transport_resends_with_the_le_a_t0_card_asks_for() -> None:
    connection = _ScriptedConnection({
        bytes.fromhex("00B0000000"): bytes.fromhex("6C03"),
        bytes.fromhex("00B0000003"): bytes.fromhex("0A0B0C9000"),
    }, pcsc.PROTOCOL_T0)
    transport = pcsc.PcscTransport(connection, None, extended_length=False)
    assert await transport.transmit(bytes.fromhex("00B0000000")) == bytes.fromhex("0A0B0C9000")


async def test_transport_drops_extended_length_on_6700() -> None:
    connection = _ScriptedConnection({bytes.fromhex("00B00000000100"): bytes.fromhex("6700")},
                                     pcsc.PROTOCOL_T1)
    transport = pcsc.PcscTransport(connection, None, extended_length=True)
    assert await transport.transmit(bytes.fromhex("00B00000000100")) == bytes.fromhex("6700")
    assert not transport.extended_length


async def test_transport_stops_when_cancelled() -> None:
    import threading

    from agent.errors import OperationCancelledError

    cancelled = threading.Event()
    connection = _ScriptedConnection({bytes.fromhex("00A4000C"): bytes.fromhex("9000")}, pcsc.PROTOCOL_T1)
    transport = pcsc.PcscTransport(connection, None, extended_length=False, cancelled=cancelled)
    assert await transport.transmit(bytes.fromhex("00A4000C")) == bytes.fromhex("9000")
    cancelled.set()
    with pytest.raises(OperationCancelledError):
        await transport.transmit(bytes.fromhex("00A4000C"))
    assert len(connection.sent) == 1


def test_a_worker_thread_keeps_one_event_loop_and_closes_it_when_it_ends() -> None:
    import gc
    import threading

    from agent.drivers.idcard.reader import _worker_loop

    seen: list[object] = []

    def work() -> None:
        first = _worker_loop()
        assert first.run_until_complete(asyncio.sleep(0, "done")) == "done"
        seen.extend([first, _worker_loop()])

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    gc.collect()
    loop = seen[0]
    assert seen[1] is loop
    assert isinstance(loop, asyncio.AbstractEventLoop)
    assert loop.is_closed()
