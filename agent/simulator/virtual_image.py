"""A finger for libfprint's ``virtual_image`` driver: sends print images to its socket.

libfprint's driver listens on the unix socket named by ``FP_VIRTUAL_IMAGE``. A client
sends frames of two native ``int32`` (``width, height``) followed by ``width*height``
8-bit grey pixels; a negative width is a command instead (``-1 n`` retry with
``FpDeviceRetry`` n, ``-2 n`` fatal ``FpDeviceError`` n, ``-4 0|1`` finger off/on,
``-5 0`` device unplugged). The real NBIS matcher then runs on the image.

The sample prints are PNGs with the ridges in the alpha channel (as libfprint's
own examples expect); :func:`print_frame` sends that channel.

Run as a process (test peer) with ``python -m agent.simulator.virtual_image
--image-socket PATH [--device-socket PATH]``; it reads one command per line on stdin and
answers ``OK`` or ``ERR <why>`` on stdout:

``IMAGE <png>`` ``RETRY <n>`` ``ERROR <n>`` ``FINGER <0|1>`` ``UNPLUG`` (image device),
``DEVICE <text>`` (one command to libfprint's ``virtual_device`` socket, e.g. ``SCAN a``,
``RETRY 1``, ``ERROR 5``, ``FINGER 1``, ``UNPLUG``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import struct
import sys
from pathlib import Path

from PIL import Image

#: libfprint refuses images larger than this in either direction.
MAX_SIDE = 5000
CONNECT_SECONDS = 10.0


def print_frame(png: Path) -> bytes:
    """The virtual_image frame for one sample print."""
    with Image.open(png) as image:
        alpha = image.getchannel("A") if "A" in image.getbands() else image.convert("L")
        width, height = alpha.size
        if width > MAX_SIDE or height > MAX_SIDE:
            raise ValueError("print image too large for virtual_image")
        return struct.pack("=ii", width, height) + alpha.tobytes()


def command_frame(kind: int, value: int) -> bytes:
    return struct.pack("=ii", kind, value)


RETRY, ERROR, FINGER, UNPLUG = -1, -2, -4, -5


async def open_socket(path: str, seconds: float = CONNECT_SECONDS
                      ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Connect, waiting for libfprint to create the socket (it does on device open)."""
    async with asyncio.timeout(seconds):
        while True:
            try:
                return await asyncio.open_unix_connection(path)
            except (FileNotFoundError, ConnectionRefusedError):
                await asyncio.sleep(0.02)


class VirtualImageFinger:
    """One connection to a virtual_image device."""

    def __init__(self, socket_path: str) -> None:
        self._path = socket_path
        self._writer: asyncio.StreamWriter | None = None

    async def send(self, frame: bytes) -> None:
        if self._writer is None or self._writer.is_closing():
            _reader, self._writer = await open_socket(self._path)
        self._writer.write(frame)
        await self._writer.drain()

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(OSError):
                await self._writer.wait_closed()
            self._writer = None


async def device_command(socket_path: str, text: str) -> str:
    """Send one command to a virtual_device socket; return what it answered (LIST)."""
    reader, writer = await open_socket(socket_path)
    writer.write(text.encode())
    await writer.drain()
    answer = await reader.read()
    writer.close()
    return answer.decode(errors="replace")


async def serve_stdin(image_socket: str, device_socket: str) -> None:
    finger = VirtualImageFinger(image_socket)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := (await reader.readline()).decode().strip():
        verb, _, arg = line.partition(" ")
        try:
            if verb == "IMAGE":
                await finger.send(print_frame(Path(arg)))
            elif verb in ("RETRY", "ERROR", "FINGER"):
                kind = {"RETRY": RETRY, "ERROR": ERROR, "FINGER": FINGER}[verb]
                await finger.send(command_frame(kind, int(arg)))
            elif verb == "UNPLUG":
                await finger.send(command_frame(UNPLUG, 0))
            elif verb == "DEVICE":
                await device_command(device_socket, arg)
            else:
                raise ValueError(f"unknown command {verb}")
            reply = "OK"
        except (OSError, ValueError, TimeoutError) as exc:
            reply = f"ERR {type(exc).__name__}"
        sys.stdout.write(reply + "\n")
        sys.stdout.flush()
    await finger.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--image-socket", default="")
    parser.add_argument("--device-socket", default="")
    args = parser.parse_args(argv)
    asyncio.run(serve_stdin(args.image_socket, args.device_socket))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
