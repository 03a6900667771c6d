"""A fake ZFM fingerprint module (R307/AS608 protocol) on a pseudo-terminal.

Run as its own process: ``python -m agent.simulator.zfm_module``. It prints the path of
the pty's slave side on the first stdout line; a driver opens that path with pyserial.
The framing here is written independently of the driver's (from the datasheet), so a
framing bug on one side shows up as a protocol error on the other.

Control lines on stdin (each answered ``OK``):
``FINGER <id>`` put a finger on the sensor (same id, same print), ``LIFT`` remove it,
``PRESS <id>`` queue one press: a finger that arrives once the sensor has seen it empty
and is lifted right after one image (so a driver waiting for the lift cannot swallow it),
``CORRUPT`` spoil the checksum of the next acknowledgement, ``GARBAGE`` answer the next
command with noise, ``IMG2TZ <code>`` make the next Img2Tz answer ``code``,
``SILENT`` ignore the next command.
"""

from __future__ import annotations

import hashlib
import os
import selectors
import struct
import sys
import tty

ADDRESS = 0xFFFFFFFF
PASSWORD = 0
PACKET_SIZE_CODE, PACKET_SIZE = 2, 128
TEMPLATE_SIZE = 512
WIDTH, HEIGHT = 256, 288


def frame(pid: int, body: bytes) -> bytes:
    length = len(body) + 2
    total = pid + (length >> 8) + (length & 0xFF) + sum(body)
    return b"\xef\x01" + struct.pack(">IBH", ADDRESS, pid, length) + body + struct.pack(">H", total & 0xFFFF)


def template_for(finger: str) -> bytes:
    digest = hashlib.sha256(finger.encode()).digest()
    return (b"\x03\x01" + digest * 16)[:TEMPLATE_SIZE]


def image_for(finger: str) -> bytes:
    seed = hashlib.sha256(finger.encode()).digest()
    return bytes(seed[(x * 7 + x // 13) % 32] for x in range(WIDTH * HEIGHT // 2))


class Module:
    def __init__(self, master: int) -> None:
        self.master = master
        self.inbox = bytearray()
        self.finger = ""
        self.imaged = ""
        self.presses: list[str] = []
        self.seen_empty = True
        self.buffers = {1: b"", 2: b""}
        self.library: dict[int, bytes] = {}
        self.corrupt = False
        self.garbage = False
        self.silent = False
        self.img2tz_code: int | None = None
        self.download: tuple[int, bytearray] | None = None

    def send(self, pid: int, body: bytes) -> None:
        packet = frame(pid, body)
        if pid == 0x07 and self.corrupt:
            self.corrupt = False
            packet = packet[:-1] + bytes([packet[-1] ^ 0x5A])
        os.write(self.master, packet)

    def ack(self, code: int, extra: bytes = b"") -> None:
        self.send(0x07, bytes([code]) + extra)

    def send_data(self, data: bytes) -> None:
        for offset in range(0, len(data), PACKET_SIZE):
            last = offset + PACKET_SIZE >= len(data)
            self.send(0x08 if last else 0x02, data[offset:offset + PACKET_SIZE])

    def feed(self, data: bytes) -> None:
        self.inbox += data
        while len(self.inbox) >= 9:
            start = self.inbox.find(b"\xef\x01")
            if start < 0:
                self.inbox.clear()
                return
            del self.inbox[:start]
            if len(self.inbox) < 9:
                return
            _address, pid, length = struct.unpack(">IBH", bytes(self.inbox[2:9]))
            if len(self.inbox) < 9 + length:
                return
            body = bytes(self.inbox[9:7 + length])
            (received,) = struct.unpack(">H", bytes(self.inbox[7 + length:9 + length]))
            del self.inbox[:9 + length]
            if received != (pid + (length >> 8) + (length & 0xFF) + sum(body)) & 0xFFFF:
                self.ack(0x01)  # packet error
                continue
            self.packet(pid, body)

    def packet(self, pid: int, body: bytes) -> None:
        if pid in (0x02, 0x08) and self.download is not None:
            buffer, data = self.download
            data += body
            if pid == 0x08:
                self.buffers[buffer] = bytes(data)
                self.download = None
            return
        if pid != 0x01 or not body:
            self.ack(0x01)
            return
        if self.silent:
            self.silent = False
            return
        if self.garbage:
            self.garbage = False
            os.write(self.master, b"\x13\x37garbage\x00\xff" * 3)
            return
        self.command(body[0], body[1:])

    def command(self, code: int, args: bytes) -> None:
        if code == 0x13:  # VfyPwd
            self.ack(0x00 if args == struct.pack(">I", PASSWORD) else 0x13)
        elif code == 0x0F:  # ReadSysPara
            self.ack(0x00, struct.pack(">HHHHIHH", 0, 0x0009, 1000, 3, ADDRESS, PACKET_SIZE_CODE, 6))
        elif code == 0x01:  # GenImg
            if self.finger:
                self.imaged = self.finger
            elif self.presses and self.seen_empty:
                self.imaged, self.seen_empty = self.presses.pop(0), False
            else:
                self.imaged, self.seen_empty = "", True
            self.ack(0x00 if self.imaged else 0x02)
        elif code == 0x02:  # Img2Tz
            if self.img2tz_code is not None:
                answer, self.img2tz_code = self.img2tz_code, None
                self.ack(answer)
            elif not self.imaged:
                self.ack(0x15)
            else:
                self.buffers[args[0] if args and args[0] in (1, 2) else 1] = template_for(self.imaged)
                self.ack(0x00)
        elif code == 0x05:  # RegModel
            same = self.buffers[1] and self.buffers[1] == self.buffers[2]
            self.ack(0x00 if same else 0x0A)
        elif code == 0x03:  # Match
            if self.buffers[1] and self.buffers[1] == self.buffers[2]:
                self.ack(0x00, struct.pack(">H", 180))
            else:
                self.ack(0x08, b"\x00\x00")
        elif code == 0x06:  # Store
            buffer, page = struct.unpack(">BH", args[:3])
            self.library[page] = self.buffers.get(buffer, b"")
            self.ack(0x00)
        elif code == 0x04:  # Search
            buffer, start, count = struct.unpack(">BHH", args[:5])
            for page in range(start, start + count):
                if page in self.library and self.library[page] == self.buffers.get(buffer):
                    self.ack(0x00, struct.pack(">HH", page, 150))
                    return
            self.ack(0x09, b"\x00\x00\x00\x00")
        elif code == 0x08:  # UpChar
            self.ack(0x00)
            self.send_data(self.buffers.get(args[0] if args else 1, b"") or bytes(TEMPLATE_SIZE))
        elif code == 0x09:  # DownChar
            self.download = (args[0] if args and args[0] in (1, 2) else 2, bytearray())
            self.ack(0x00)
        elif code == 0x0A:  # UpImage
            if not self.imaged:
                self.ack(0x15)
                return
            self.ack(0x00)
            self.send_data(image_for(self.imaged))
        else:
            self.ack(0x01)

    def control(self, line: str) -> None:
        verb, _, arg = line.partition(" ")
        if verb == "FINGER":
            self.finger = arg
        elif verb == "PRESS":
            self.presses.append(arg)
        elif verb == "LIFT":
            self.finger = ""
        elif verb == "CORRUPT":
            self.corrupt = True
        elif verb == "GARBAGE":
            self.garbage = True
        elif verb == "SILENT":
            self.silent = True
        elif verb == "IMG2TZ":
            self.img2tz_code = int(arg, 0)
        else:
            raise ValueError(verb)


def main() -> int:
    master, slave = os.openpty()
    tty.setraw(slave)
    module = Module(master)
    sys.stdout.write(os.ttyname(slave) + "\n")
    sys.stdout.flush()
    selector = selectors.DefaultSelector()
    selector.register(master, selectors.EVENT_READ, "pty")
    selector.register(sys.stdin.fileno(), selectors.EVENT_READ, "control")
    pending = b""
    while True:
        for key, _mask in selector.select():
            if key.data == "pty":
                module.feed(os.read(master, 4096))
                continue
            chunk = os.read(sys.stdin.fileno(), 4096)
            if not chunk:
                return 0
            pending += chunk
            while b"\n" in pending:
                raw, pending = pending.split(b"\n", 1)
                try:
                    module.control(raw.decode().strip())
                    reply = "OK"
                except ValueError:
                    reply = "ERR"
                sys.stdout.write(reply + "\n")
                sys.stdout.flush()


if __name__ == "__main__":
    raise SystemExit(main())
