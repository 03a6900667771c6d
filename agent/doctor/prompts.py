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

    def __init__(self, stream: TextIO | None = None, *, terminal: bool | None = None) -> None:
        self._stream = stream if stream is not None else sys.stderr
        self.terminal = sys.stdin.isatty() if terminal is None else terminal

    def ask(self, text: str, wait_s: float) -> None:
        """Say what to do now; the caller waits for the device's event."""
        print(f">>> {text} (waiting up to {wait_s:g} s)", file=self._stream, flush=True)

    async def confirm(self, text: str, wait_s: float) -> None:
        """Say what to do; on a terminal, wait for Enter (or ``wait_s``), else go on at once."""
        if not self.terminal:
            print(f">>> {text}", file=self._stream, flush=True)
            return
        print(f">>> {text}, then press Enter (going on by itself in {wait_s:g} s)", file=self._stream, flush=True)
        loop = asyncio.get_running_loop()
        pressed: asyncio.Future[None] = loop.create_future()
        fd = sys.stdin.fileno()

        def readable() -> None:
            os.read(fd, 4096)
            if not pressed.done():
                pressed.set_result(None)

        loop.add_reader(fd, readable)
        try:
            await asyncio.wait_for(pressed, wait_s)
        except TimeoutError:
            pass
        finally:
            loop.remove_reader(fd)
