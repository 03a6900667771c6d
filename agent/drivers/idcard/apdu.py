"""ISO 7816-4 command and response APDUs (short and extended length) and status words."""

from __future__ import annotations

from dataclasses import dataclass

from agent.errors import DataFormatError, DeviceProtocolError

# status words used by the eMRTD code
SW_OK = 0x9000
SW_END_OF_FILE = 0x6282           # fewer bytes than Le: end of file reached
SW_AUTH_FAILED = 0x6300
SW_WRONG_LENGTH = 0x6700
SW_SM_OBJECTS_MISSING = 0x6987
SW_SM_OBJECTS_INCORRECT = 0x6988
SW_SECURITY_NOT_SATISFIED = 0x6982
SW_AUTH_BLOCKED = 0x6983
SW_CONDITIONS_NOT_SATISFIED = 0x6985
SW_FILE_NOT_FOUND = 0x6A82
SW_WRONG_P1P2 = 0x6B00
SW_WRONG_DATA = 0x6A80
SW_INS_NOT_SUPPORTED = 0x6D00
SW_CLA_NOT_SUPPORTED = 0x6E00
SW_UNKNOWN = 0x6F00

#: Le value meaning "as many as available" in the short (256) and extended (65536) forms.
LE_MAX_SHORT = 256
LE_MAX_EXTENDED = 65536


@dataclass(frozen=True, slots=True)
class CommandApdu:
    """A command APDU. ``le`` is None when no response data is expected."""

    cla: int
    ins: int
    p1: int
    p2: int
    data: bytes = b""
    le: int | None = None

    def needs_extended(self) -> bool:
        return len(self.data) > 255 or (self.le is not None and self.le > LE_MAX_SHORT)

    def encode(self, extended: bool | None = None) -> bytes:
        """Encode; ``extended`` None picks the short form unless the sizes need extended."""
        if extended is None:
            extended = self.needs_extended()
        if len(self.data) > 65535 or (self.le is not None and not 0 <= self.le <= LE_MAX_EXTENDED):
            raise DataFormatError("APDU data or Le out of range")
        if not extended and self.needs_extended():
            raise DataFormatError("APDU needs extended length")
        out = bytearray((self.cla, self.ins, self.p1, self.p2))
        if extended:
            if self.data:
                out += b"\x00" + len(self.data).to_bytes(2, "big") + self.data
                if self.le is not None:
                    out += (self.le % LE_MAX_EXTENDED).to_bytes(2, "big")
            elif self.le is not None:
                out += b"\x00" + (self.le % LE_MAX_EXTENDED).to_bytes(2, "big")
        else:
            if self.data:
                out += bytes([len(self.data)]) + self.data
            if self.le is not None:
                out.append(self.le % LE_MAX_SHORT)
        return bytes(out)

    def __repr__(self) -> str:  # data may carry personal or key material
        header = f"{self.cla:02X} {self.ins:02X} {self.p1:02X} {self.p2:02X}"
        return f"CommandApdu({header}, lc={len(self.data)}, le={self.le})"


def parse_command(raw: bytes) -> tuple[CommandApdu, bool]:
    """Decode a command APDU (cases 1-4, short or extended). Returns (apdu, extended)."""
    if len(raw) < 4:
        raise DataFormatError("command APDU shorter than its header")
    cla, ins, p1, p2 = raw[0], raw[1], raw[2], raw[3]
    body = raw[4:]
    if not body:
        return CommandApdu(cla, ins, p1, p2), False
    if len(body) == 1:
        return CommandApdu(cla, ins, p1, p2, le=body[0] or LE_MAX_SHORT), False
    if body[0] != 0:
        lc = body[0]
        if len(body) == 1 + lc:
            return CommandApdu(cla, ins, p1, p2, body[1:]), False
        if len(body) == 2 + lc:
            return CommandApdu(cla, ins, p1, p2, body[1:1 + lc], body[-1] or LE_MAX_SHORT), False
        raise DataFormatError("command APDU length does not match Lc")
    # extended: 00 followed by two bytes
    if len(body) == 3:
        le = int.from_bytes(body[1:3], "big") or LE_MAX_EXTENDED
        return CommandApdu(cla, ins, p1, p2, le=le), True
    if len(body) < 3:
        raise DataFormatError("extended command APDU truncated")
    lc = int.from_bytes(body[1:3], "big")
    if lc == 0:
        raise DataFormatError("extended command APDU with Lc 0")
    if len(body) == 3 + lc:
        return CommandApdu(cla, ins, p1, p2, body[3:]), True
    if len(body) == 5 + lc:
        le = int.from_bytes(body[-2:], "big") or LE_MAX_EXTENDED
        return CommandApdu(cla, ins, p1, p2, body[3:3 + lc], le), True
    raise DataFormatError("extended command APDU length does not match Lc")


@dataclass(frozen=True, slots=True)
class ResponseApdu:
    data: bytes
    sw: int

    @classmethod
    def parse(cls, raw: bytes) -> ResponseApdu:
        if len(raw) < 2:
            raise DeviceProtocolError("card response shorter than its status word")
        return cls(bytes(raw[:-2]), int.from_bytes(raw[-2:], "big"))

    @property
    def ok(self) -> bool:
        return self.sw == SW_OK

    def encode(self) -> bytes:
        return self.data + self.sw.to_bytes(2, "big")

    def __repr__(self) -> str:
        return f"ResponseApdu(len={len(self.data)}, sw={self.sw:04X})"


def describe_sw(sw: int) -> str:
    """A short, data-free description of a status word for error messages."""
    names = {
        SW_OK: "success", SW_END_OF_FILE: "end of file", SW_AUTH_FAILED: "authentication failed",
        SW_WRONG_LENGTH: "wrong length", SW_SM_OBJECTS_MISSING: "SM data objects missing",
        SW_SM_OBJECTS_INCORRECT: "SM data objects incorrect",
        SW_SECURITY_NOT_SATISFIED: "security status not satisfied",
        SW_AUTH_BLOCKED: "authentication blocked", SW_CONDITIONS_NOT_SATISFIED: "conditions not satisfied",
        SW_FILE_NOT_FOUND: "file not found", SW_WRONG_P1P2: "wrong P1/P2", SW_WRONG_DATA: "wrong data",
        SW_INS_NOT_SUPPORTED: "instruction not supported", SW_CLA_NOT_SUPPORTED: "class not supported",
    }
    return f"SW {sw:04X} ({names.get(sw, 'unexpected')})"
