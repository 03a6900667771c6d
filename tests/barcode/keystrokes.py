"""Test-side typing: text -> the key events a US wedge scanner would send (written independently
of the decoder's table, from the Linux input-event-codes list)."""

from __future__ import annotations

from evdev import InputEvent, ecodes

_SHIFTED = {'!': '1', '@': '2', '#': '3', '$': '4', '%': '5', '^': '6', '&': '7', '*': '8', '(': '9',
            ')': '0', '_': 'MINUS', '+': 'EQUAL', '{': 'LEFTBRACE', '}': 'RIGHTBRACE', ':': 'SEMICOLON',
            '"': 'APOSTROPHE', '~': 'GRAVE', '|': 'BACKSLASH', '<': 'COMMA', '>': 'DOT', '?': 'SLASH'}
_PLAIN = {'-': 'MINUS', '=': 'EQUAL', '[': 'LEFTBRACE', ']': 'RIGHTBRACE', ';': 'SEMICOLON',
          "'": 'APOSTROPHE', '`': 'GRAVE', '\\': 'BACKSLASH', ',': 'COMMA', '.': 'DOT', '/': 'SLASH',
          ' ': 'SPACE', '\n': 'ENTER', '\t': 'TAB'}
_KP = {str(d): f"KP{d}" for d in range(10)}


def key(name: str) -> int:
    return int(getattr(ecodes, f"KEY_{name}"))


def strokes(text: str) -> list[tuple[int, int]]:
    """(code, value) pairs; characters outside the layout go as Alt + keypad code point."""
    out: list[tuple[int, int]] = []
    for char in text:
        shift = False
        if char.isascii() and char.isalpha():
            name, shift = char.upper(), char.isupper()
        elif char.isascii() and char.isdigit():
            name = char
        elif char in _SHIFTED:
            name, shift = _SHIFTED[char], True
        elif char in _PLAIN:
            name = _PLAIN[char]
        else:
            out.append((key("LEFTALT"), 1))
            for digit in str(ord(char)):
                out += [(key(_KP[digit]), 1), (key(_KP[digit]), 0)]
            out.append((key("LEFTALT"), 0))
            continue
        if shift:
            out.append((key("LEFTSHIFT"), 1))
        out += [(key(name), 1), (key(name), 0)]
        if shift:
            out.append((key("LEFTSHIFT"), 0))
    return out


def events(text: str, start: float = 0.0, step: float = 0.002) -> list[InputEvent]:
    """Key events (each followed by SYN_REPORT) with ``step`` seconds between keys."""
    out: list[InputEvent] = []
    when = start
    for code, value in strokes(text):
        sec, usec = int(when), round((when - int(when)) * 1_000_000)
        out.append(InputEvent(sec, usec, ecodes.EV_KEY, code, value))
        out.append(InputEvent(sec, usec, ecodes.EV_SYN, ecodes.SYN_REPORT, 0))
        when += step
    return out
