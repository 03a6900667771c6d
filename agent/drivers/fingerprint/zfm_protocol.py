"""The ZFM packet protocol of UART fingerprint modules (R307, R503, AS608 and kin).

Every packet is ``EF01 | address(4) | PID(1) | LEN(2) | payload | SUM(2)``, big-endian,
where ``LEN`` counts the payload plus the checksum and ``SUM`` is the low 16 bits of the
sum of the PID, both length bytes and every payload byte. PIDs: 0x01 command, 0x02 data
(more follows), 0x07 acknowledgement, 0x08 last data packet. An acknowledgement's first
payload byte is the confirmation code (0x00 success).

:class:`ZfmLink` is synchronous on purpose: it runs on a pyserial port inside
``ctx.run_blocking``; the async device in :mod:`.zfm_backend` sequences the calls.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Protocol

from agent.errors import (
    AccessDeniedError,
    DataFormatError,
    DeviceProtocolError,
    DeviceUnavailableError,
)

HEADER = b"\xef\x01"
DEFAULT_ADDRESS = 0xFFFFFFFF
PID_COMMAND, PID_DATA, PID_ACK, PID_END = 0x01, 0x02, 0x07, 0x08
MAX_PAYLOAD = 512

# instruction codes
GEN_IMG, IMG2TZ, MATCH, SEARCH, REG_MODEL, STORE = 0x01, 0x02, 0x03, 0x04, 0x05, 0x06
UP_CHAR, DOWN_CHAR, UP_IMAGE, READ_SYS_PARA, VFY_PWD = 0x08, 0x09, 0x0A, 0x0F, 0x13

# confirmation codes
OK = 0x00
PACKET_ERROR = 0x01
NO_FINGER = 0x02
IMAGE_FAILED = 0x03
IMAGE_DISORDERLY = 0x06
TOO_FEW_FEATURES = 0x07
NO_MATCH = 0x08
NOT_FOUND = 0x09
COMBINE_FAILED = 0x0A
WRONG_PASSWORD = 0x13
INVALID_IMAGE = 0x15

#: ReadSysPara packet-size codes -> data packet payload length.
PACKET_SIZES = {0: 32, 1: 64, 2: 128, 3: 256}
#: Image transfer of UpImage: 256 x 288 pixels, two 4-bit pixels per byte.
IMAGE_WIDTH, IMAGE_HEIGHT = 256, 288


class SerialPort(Protocol):
    """The part of ``serial.Serial`` the link uses."""

    def write(self, data: bytes, /) -> int | None: ...
    def read(self, size: int = 1, /) -> bytes: ...
    def reset_input_buffer(self) -> None: ...


def checksum(pid: int, body: bytes) -> int:
    length = len(body) + 2
    return (pid + (length >> 8) + (length & 0xFF) + sum(body)) & 0xFFFF


def encode_packet(pid: int, body: bytes, address: int = DEFAULT_ADDRESS) -> bytes:
    if len(body) > MAX_PAYLOAD:
        raise DataFormatError("ZFM payload too long")
    return (HEADER + struct.pack(">IBH", address, pid, len(body) + 2) + body
            + struct.pack(">H", checksum(pid, body)))


@dataclass(frozen=True, slots=True)
class Packet:
    pid: int
    body: bytes

    @property
    def code(self) -> int:
        """The confirmation code of an acknowledgement."""
        if self.pid != PID_ACK or not self.body:
            raise DeviceProtocolError("ZFM module sent a data packet where an acknowledgement belongs")
        return self.body[0]


@dataclass(frozen=True, slots=True)
class SystemParameters:
    status: int
    system_id: int
    library_size: int
    security_level: int
    address: int
    packet_size: int
    baud_rate: int


class ZfmLink:
    """One module on one serial port. Raises agent errors only."""

    def __init__(self, port: SerialPort, address: int = DEFAULT_ADDRESS, name: str = "") -> None:
        self._port = port
        self._address = address
        self._name = name or "ZFM module"
        self.packet_size = 128

    # -- framing -----------------------------------------------------------------------------------

    def _read_exact(self, size: int) -> bytes:
        data = self._port.read(size)
        if len(data) != size:
            raise DeviceUnavailableError(f"{self._name} did not answer")
        return data

    def send(self, pid: int, body: bytes) -> None:
        self._port.write(encode_packet(pid, body, self._address))

    def receive(self) -> Packet:
        head = self._read_exact(9)
        if head[:2] != HEADER:
            self._port.reset_input_buffer()
            raise DeviceProtocolError(f"{self._name}: bad packet header")
        address, pid, length = struct.unpack(">IBH", head[2:])
        if address != self._address:
            self._port.reset_input_buffer()
            raise DeviceProtocolError(f"{self._name}: packet from another address")
        if pid not in (PID_DATA, PID_ACK, PID_END) or not 2 <= length <= MAX_PAYLOAD + 2:
            self._port.reset_input_buffer()
            raise DeviceProtocolError(f"{self._name}: malformed packet")
        rest = self._read_exact(length)
        body, (received,) = rest[:-2], struct.unpack(">H", rest[-2:])
        if received != checksum(pid, body):
            self._port.reset_input_buffer()
            raise DeviceProtocolError(f"{self._name}: packet checksum mismatch")
        return Packet(pid, body)

    def command(self, instruction: int, args: bytes = b"") -> Packet:
        self.send(PID_COMMAND, bytes([instruction]) + args)
        answer = self.receive()
        if answer.pid != PID_ACK:
            raise DeviceProtocolError(f"{self._name}: expected an acknowledgement")
        if answer.code == PACKET_ERROR:
            raise DeviceProtocolError(f"{self._name}: module reports a packet error")
        return answer

    def receive_data(self, limit: int) -> bytes:
        """Collect data packets up to the end packet (UpChar, UpImage)."""
        chunks: list[bytes] = []
        total = 0
        while True:
            packet = self.receive()
            if packet.pid not in (PID_DATA, PID_END):
                raise DeviceProtocolError(f"{self._name}: expected a data packet")
            total += len(packet.body)
            if total > limit:
                raise DeviceProtocolError(f"{self._name}: more data than announced")
            chunks.append(packet.body)
            if packet.pid == PID_END:
                return b"".join(chunks)

    def send_data(self, data: bytes) -> None:
        size = self.packet_size
        for offset in range(0, len(data), size):
            last = offset + size >= len(data)
            self.send(PID_END if last else PID_DATA, data[offset:offset + size])

    # -- instructions ------------------------------------------------------------------------------

    def verify_password(self, password: int) -> None:
        if self.command(VFY_PWD, struct.pack(">I", password)).code != OK:
            raise AccessDeniedError(f"{self._name} refused the password")

    def read_system_parameters(self) -> SystemParameters:
        answer = self.command(READ_SYS_PARA)
        if answer.code != OK or len(answer.body) < 17:
            raise DeviceProtocolError(f"{self._name}: ReadSysPara failed")
        status, system_id, library, level, address, size_code, baud = struct.unpack(
            ">HHHHIHH", answer.body[1:17])
        if size_code not in PACKET_SIZES:
            raise DeviceProtocolError(f"{self._name}: unknown packet size code")
        self.packet_size = PACKET_SIZES[size_code]
        return SystemParameters(status, system_id, library, level, address, self.packet_size, baud * 9600)

    def gen_img(self) -> int:
        """Take an image; returns the confirmation code (OK, NO_FINGER, IMAGE_FAILED)."""
        return self.command(GEN_IMG).code

    def img2tz(self, buffer: int) -> int:
        return self.command(IMG2TZ, bytes([buffer])).code

    def reg_model(self) -> int:
        return self.command(REG_MODEL).code

    def match(self) -> tuple[bool, int]:
        answer = self.command(MATCH)
        if answer.code == NO_MATCH:
            return False, 0
        if answer.code != OK or len(answer.body) < 3:
            raise DeviceProtocolError(f"{self._name}: Match failed")
        return True, struct.unpack(">H", answer.body[1:3])[0]

    def search(self, buffer: int, start: int, count: int) -> tuple[int, int]:
        """Search the module's own library; ``(-1, 0)`` when not found."""
        answer = self.command(SEARCH, struct.pack(">BHH", buffer, start, count))
        if answer.code == NOT_FOUND:
            return -1, 0
        if answer.code != OK or len(answer.body) < 5:
            raise DeviceProtocolError(f"{self._name}: Search failed")
        page, score = struct.unpack(">HH", answer.body[1:5])
        return page, score

    def up_char(self, buffer: int) -> bytes:
        if self.command(UP_CHAR, bytes([buffer])).code != OK:
            raise DeviceProtocolError(f"{self._name}: UpChar refused")
        return self.receive_data(limit=4096)

    def down_char(self, buffer: int, template: bytes) -> None:
        if self.command(DOWN_CHAR, bytes([buffer])).code != OK:
            raise DeviceProtocolError(f"{self._name}: DownChar refused")
        self.send_data(template)

    def up_image(self) -> bytes:
        """The current image as 8-bit grey pixels (the module sends 4 bits per pixel)."""
        if self.command(UP_IMAGE).code != OK:
            raise DeviceProtocolError(f"{self._name}: UpImage refused")
        packed = self.receive_data(limit=IMAGE_WIDTH * IMAGE_HEIGHT // 2)
        if len(packed) != IMAGE_WIDTH * IMAGE_HEIGHT // 2:
            raise DeviceProtocolError(f"{self._name}: truncated image")
        pixels = bytearray(len(packed) * 2)
        pixels[0::2] = bytes((b & 0xF0) for b in packed)
        pixels[1::2] = bytes(((b & 0x0F) << 4) for b in packed)
        return bytes(pixels)
