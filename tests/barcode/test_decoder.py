"""Plain unit tests of the keyboard-wedge decoder and the CCCD QR parser."""

from __future__ import annotations

import datetime as dt

from evdev import InputEvent, ecodes
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.drivers.barcode.keyboard_wedge import KeyboardWedgeDecoder, WedgeSettings
from agent.drivers.idcard.qr import is_cccd_qr, parse_cccd_qr
from tests.barcode.keystrokes import events, key

CCCD = "001099012345|123456789|Nguyễn Văn An|01021990|Nam|Số 1 Tràng Tiền, Hoàn Kiếm, Hà Nội|15082021"


def decode(decoder: KeyboardWedgeDecoder, stream: list[InputEvent]) -> list[str]:
    scans: list[str] = []
    for event in stream:
        scans += decoder.feed(event)
    return scans


def test_us_keymap_with_shift_and_enter_suffix() -> None:
    text = "Ab1!@#$%^&*()_+{}:\"~|<>? x-=[];'`\\,./"
    assert decode(KeyboardWedgeDecoder(), events(text + "\n")) == [text]


def test_caps_lock_inverts_letters_only() -> None:
    stream = [InputEvent(0, 0, ecodes.EV_KEY, key("CAPSLOCK"), 1), *events("ab1\n", start=0.01)]
    assert decode(KeyboardWedgeDecoder(), stream) == ["AB1"]


def test_alt_keypad_types_vietnamese_and_the_cccd_qr_parses() -> None:
    scans = decode(KeyboardWedgeDecoder(), events(CCCD + "\n"))
    assert scans == [CCCD]
    payload = parse_cccd_qr(scans[0])
    assert payload.id_number == "001099012345"
    assert payload.full_name == "Nguyễn Văn An"
    assert (payload.date_of_birth, payload.date_of_issue) == (dt.date(1990, 2, 1), dt.date(2021, 8, 15))
    assert "Nguy" not in repr(payload)


def test_prefix_stripped_and_custom_suffix() -> None:
    decoder = KeyboardWedgeDecoder(WedgeSettings(prefix="]Q", suffix="\t"))
    assert decode(decoder, events("]QABC-123\t")) == ["ABC-123"]


def test_pause_between_keys_splits_scans_without_suffix() -> None:
    decoder = KeyboardWedgeDecoder(WedgeSettings(suffix="", gap=0.1))
    stream = events("8934567890123", start=0.0) + events("4006381333931", start=1.0)
    assert decode(decoder, stream) == ["8934567890123"]
    assert decoder.pending
    assert decoder.flush() == ["4006381333931"]
    assert decoder.flush() == []


def test_overlong_scan_is_dropped_and_counted() -> None:
    decoder = KeyboardWedgeDecoder(WedgeSettings(max_length=16))
    assert decode(decoder, events("X" * 40 + "\n" + "OK\n")) == ["OK"]
    assert decoder.overflows == 1


def test_releases_repeats_and_other_event_types_type_nothing() -> None:
    stream = [InputEvent(0, 0, ecodes.EV_MSC, ecodes.MSC_SCAN, 458756),
              InputEvent(0, 0, ecodes.EV_KEY, key("A"), 2),
              InputEvent(0, 0, ecodes.EV_KEY, key("F1"), 1),
              *events("z\n")]
    assert decode(KeyboardWedgeDecoder(), stream) == ["z"]


def test_not_cccd_payloads() -> None:
    assert not is_cccd_qr("https://example.invalid/x")
    assert not is_cccd_qr("12345|1|a|01011990|Nam|x|01012020")
    assert not is_cccd_qr("001099012345||Tên|31021990|Nữ|x|01012020")  # 31 February
    with_extra = parse_cccd_qr("001099012345||Lê Thị B|01011990|Nữ|Huế|01012024|extra")
    assert with_extra.old_id_number == ""
    assert with_extra.full_name == "Lê Thị B"


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([ecodes.EV_KEY, ecodes.EV_SYN, ecodes.EV_MSC]),
                          st.integers(0, 255), st.integers(0, 2), st.floats(0, 0.5)), max_size=300))
def test_any_event_stream_decodes_without_error_and_stays_bounded(
        stream: list[tuple[int, int, int, float]]) -> None:
    decoder = KeyboardWedgeDecoder(WedgeSettings(max_length=32, gap=0.2))
    when = 0.0
    for kind, code, value, step in stream:
        when += step
        sec = int(when)
        for scan in decoder.feed(InputEvent(sec, int((when - sec) * 1e6), kind, code, value)):
            assert 0 < len(scan) <= 32 + 1
    for scan in decoder.flush():
        assert len(scan) <= 32 + 1
