"""What the doctor asks of the installer at the counter, and how it waits for them.

Prompts go to stderr (stdout carries the report, or its JSON). The doctor then waits for
the device's own event (a card inserted, a finger, a scan) for at most ``wait_s``. Only where
no event can tell (a sheet put on a scanner's glass) does it wait for Enter, and only on a
terminal; without one (CI, a pipe) it goes on at once.
"""

from __future__ import annotations

import asyncio
import os
import sys
from typing import TextIO


class Installer:
    """The person running the doctor."""

    def __init__(self, stream: TextIO | None = None, *, keyboard: int | None = None) -> None:
        self._stream = stream if stream is not None else sys.stderr
        self._keyboard = _stdin_fd() if keyboard is None else keyboard  # where Enter comes from
        self.terminal = self._keyboard >= 0 and os.isatty(self._keyboard)

    def ask(self, text: str, wait_s: float) -> None:
        """Say what to do now; the caller waits for the device's event."""
        print(f">>> {text} (waiting up to {wait_s:g} s)", file=self._stream, flush=True)

    async def confirm(self, text: str, wait_s: float) -> bool:
        """Say what to do; on a terminal, wait for Enter (True) or ``wait_s`` (False), else go on at once."""
        if not self.terminal:
            print(f">>> {text}", file=self._stream, flush=True)
            return False
        print(f">>> {text}, then press Enter (going on by itself in {wait_s:g} s)", file=self._stream, flush=True)
        loop = asyncio.get_running_loop()
        pressed: asyncio.Future[None] = loop.create_future()
        fd = self._keyboard

        def readable() -> None:
            os.read(fd, 4096)
            if not pressed.done():
                pressed.set_result(None)

        loop.add_reader(fd, readable)
        try:
            await asyncio.wait_for(pressed, wait_s)
        except TimeoutError:
            return False
        finally:
            loop.remove_reader(fd)
        return True


def _stdin_fd() -> int:
    try:
        return sys.stdin.fileno()
    except (AttributeError, ValueError, OSError):  # no stdin at all, or a closed one
        return -1
