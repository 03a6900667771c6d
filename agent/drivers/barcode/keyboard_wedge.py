"""Decoding HID keyboard-wedge scanners: key events in, scanned texts out.

A wedge scanner "types" its payload. The decoder turns ``EV_KEY`` events into
characters with a keymap (shift and caps lock applied), recognises Alt+keypad
sequences (how scanners type characters the layout lacks, e.g. Vietnamese letters:
decimal Unicode code points, or a leading 0 for a Windows-1252 byte), and splits the
stream into scans by the configured suffix (Enter by default) or by a pause longer
than ``gap`` seconds between keys (scanners type a whole code in a few milliseconds).
A configured prefix is stripped. A scan longer than ``max_length`` is dropped and
counted, never buffered without bound.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

EV_KEY = 1
KEY_UP, KEY_DOWN, KEY_REPEAT = 0, 1, 2
SHIFTS = frozenset({42, 54})  # KEY_LEFTSHIFT, KEY_RIGHTSHIFT
ALTS = frozenset({56, 100})  # KEY_LEFTALT, KEY_RIGHTALT
KEY_CAPSLOCK = 58
KEYPAD_DIGITS: Mapping[int, str] = {82: "0", 79: "1", 80: "2", 81: "3", 75: "4", 76: "5", 77: "6",
                                    71: "7", 72: "8", 73: "9"}


def _rows(codes: range | list[int], normal: str, shifted: str) -> dict[int, tuple[str, str]]:
    return {code: (n, s) for code, n, s in zip(codes, normal, shifted, strict=True)}


#: US layout: key code -> (unshifted, shifted).
US_KEYMAP: Mapping[int, tuple[str, str]] = {
    **_rows(range(2, 14), "1234567890-=", "!@#$%^&*()_+"),
    **_rows(range(16, 28), "qwertyuiop[]", "QWERTYUIOP{}"),
    **_rows(range(30, 42), "asdfghjkl;'`", 'ASDFGHJKL:"~'),
    43: ("\\", "|"),
    **_rows(range(44, 54), "zxcvbnm,./", "ZXCVBNM<>?"),
    57: (" ", " "), 15: ("\t", "\t"), 28: ("\n", "\n"), 96: ("\n", "\n"),
    55: ("*", "*"), 74: ("-", "-"), 78: ("+", "+"), 83: (".", "."), 98: ("/", "/"),
    **{code: (digit, digit) for code, digit in KEYPAD_DIGITS.items()},
}

KEYMAPS: Mapping[str, Mapping[int, tuple[str, str]]] = {"us": US_KEYMAP}


class KeyEvent(Protocol):
    """What the decoder reads of an ``evdev.InputEvent``."""

    @property
    def type(self) -> int: ...
    @property
    def code(self) -> int: ...
    @property
    def value(self) -> int: ...
    def timestamp(self) -> float: ...


@dataclass(frozen=True, slots=True)
class WedgeSettings:
    prefix: str = ""
    suffix: str = "\n"  # "" = scans end by the pause only
    gap: float = 0.2
    max_length: int = 4096
    keymap: str = "us"


class KeyboardWedgeDecoder:
    """Stateful decoder for one device. Not thread-safe; feed it from one task."""

    def __init__(self, settings: WedgeSettings | None = None) -> None:
        self.settings = settings or WedgeSettings()
        try:
            self._keymap = KEYMAPS[self.settings.keymap]
        except KeyError:
            raise ValueError(f"unknown keymap {self.settings.keymap!r}") from None
        self._buffer: list[str] = []
        self._shift: set[int] = set()
        self._alt: set[int] = set()
        self._alt_digits = ""
        self._caps = False
        self._last_key = 0.0
        self._overflowing = False
        self.overflows = 0

    @property
    def pending(self) -> bool:
        return bool(self._buffer)

    def feed(self, event: KeyEvent) -> list[str]:
        """Take one event; return the scans it completed (usually none, at most two)."""
        if event.type != EV_KEY:
            return []
        code, value = event.code, event.value
        if code in SHIFTS:
            (self._shift.add if value else self._shift.discard)(code)
            return []
        if code in ALTS:
            if value:
                self._alt.add(code)
                return []
            self._alt.discard(code)
            if self._alt or not self._alt_digits:
                return []
            digits, self._alt_digits = self._alt_digits, ""
            return self._type(self._alt_character(digits), event.timestamp())
        if value != KEY_DOWN:  # releases and auto-repeat carry no new character
            return []
        if code == KEY_CAPSLOCK:
            self._caps = not self._caps
            return []
        if self._alt and code in KEYPAD_DIGITS:
            self._alt_digits += KEYPAD_DIGITS[code]
            return []
        pair = self._keymap.get(code)
        if pair is None:
            return []
        char = pair[1] if self._shift else pair[0]
        if self._caps and char.isalpha():
            char = char.swapcase()
        return self._type(char, event.timestamp())

    @staticmethod
    def _alt_character(digits: str) -> str:
        number = int(digits)
        if digits.startswith("0") and number < 256:
            return bytes([number]).decode("cp1252", errors="replace")
        return chr(number) if 0 < number < 0x110000 else "\ufffd"

    def _type(self, char: str, when: float) -> list[str]:
        done: list[str] = []
        if self._buffer and when - self._last_key > self.settings.gap:
            done += self._finish()
        self._last_key = when
        self._buffer.append(char)
        if len(self._buffer) > self.settings.max_length + len(self.settings.suffix):
            self._buffer.clear()
            if not self._overflowing:
                self.overflows += 1
            self._overflowing = True
            return done
        suffix = self.settings.suffix
        if suffix and "".join(self._buffer[-len(suffix):]) == suffix:
            del self._buffer[-len(suffix):]
            done += self._finish()
        return done

    def flush(self) -> list[str]:
        """End the pending scan (the idle pause after the last key has passed)."""
        return self._finish()

    def _finish(self) -> list[str]:
        text = "".join(self._buffer)
        self._buffer.clear()
        if self._overflowing:  # tail of an over-long scan: drop it as well
            self._overflowing = False
            return []
        if self.settings.prefix and text.startswith(self.settings.prefix):
            text = text[len(self.settings.prefix):]
        return [text] if text else []
