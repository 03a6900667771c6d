"""A card that answers from a recorded session: no crypto, no parsing, a table look-up.

For the transport baseline of ``bench/idcard_pcsc.py``: served on a vpcd slot by
``python -m agent.simulator.vpcd_card --replay FILE``, it costs the card side next to
nothing, so a session replayed against it measures pcscd + vpcd + the reader's own calls
alone; a terminal whose randomness repeats the recording's can run its whole protocol
stack (secure messaging, passive and active authentication) against it too.

The recording is JSON: ``{"atr": HEX, "exchanges": [[COMMAND_HEX, RESPONSE_HEX], ...]}``.
Only emulator sessions are ever recorded (the benchmark writes one to its temporary
directory): never a real card's.

The i-th command of a session gets the i-th recorded response when it is the i-th
recorded command. Any other command is answered ``6F00`` and does not advance the
session (``mismatches`` counts them); a power-on, a reset, or the recording's first command
arriving out of turn starts the session over.
"""

from __future__ import annotations

import json
from pathlib import Path

from agent.errors import DataFormatError

SW_NO_PRECISE_DIAGNOSIS = b"\x6f\x00"


class RecordedCard:
    """Answers a recorded APDU sequence in order (see the module docstring)."""

    def __init__(self, atr: bytes, exchanges: list[tuple[bytes, bytes]]) -> None:
        if not exchanges:
            raise DataFormatError("a recorded card needs at least one exchange")
        self._atr = atr
        self._exchanges = exchanges
        self._position = 0
        self.mismatches = 0
        self.sessions = 0

    @classmethod
    def from_file(cls, path: Path) -> RecordedCard:
        try:
            recording = json.loads(path.read_text(encoding="ascii"))
            exchanges = [(bytes.fromhex(command), bytes.fromhex(response))
                         for command, response in recording["exchanges"]]
            return cls(bytes.fromhex(recording["atr"]), exchanges)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise DataFormatError("not a recorded card session") from exc

    @staticmethod
    def dump(path: Path, atr: bytes, exchanges: list[tuple[bytes, bytes]]) -> None:
        """Write a recording for :meth:`from_file`."""
        recording = {"atr": atr.hex(), "exchanges": [[c.hex(), r.hex()] for c, r in exchanges]}
        path.write_text(json.dumps(recording), encoding="ascii")

    def power_on(self) -> bytes:
        self._position = 0
        return self._atr

    def power_off(self) -> None:
        self._position = 0

    def transmit(self, apdu: bytes) -> bytes:
        position = self._position
        if position < len(self._exchanges) and apdu == self._exchanges[position][0]:
            self._position = position + 1
            if position == 0:
                self.sessions += 1
            return self._exchanges[position][1]
        if apdu == self._exchanges[0][0]:  # a new session begins
            self._position = 1
            self.sessions += 1
            return self._exchanges[0][1]
        self.mismatches += 1
        return SW_NO_PRECISE_DIAGNOSIS
