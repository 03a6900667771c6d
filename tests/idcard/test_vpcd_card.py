"""The vpcd card bridge against a test socket playing vpcd's side of the protocol."""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterator

import pytest

from tests.idcard.pcsc_testbed import VpcdCardProcess
from tests.idcard.tiny_card import TinyCard


class FakeVpcd:
    """vpcd's end: listens, accepts the card, sends length-prefixed messages."""

    def __init__(self) -> None:
        self.server = socket.socket()
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(1)
        self.server.settimeout(10)
        self.port = int(self.server.getsockname()[1])
        self.conn: socket.socket | None = None

    def accept(self) -> None:
        if self.conn is not None:
            self.conn.close()
        self.conn, _ = self.server.accept()
        self.conn.settimeout(10)

    def send(self, payload: bytes) -> None:
        assert self.conn is not None
        # Like Debian's vpcd: the length and the payload in two writes.
        self.conn.sendall(struct.pack(">H", len(payload)))
        self.conn.sendall(payload)

    def receive(self) -> bytes:
        assert self.conn is not None
        header = self._exact(2)
        return self._exact(struct.unpack(">H", header)[0])

    def _exact(self, size: int) -> bytes:
        assert self.conn is not None
        data = b""
        while len(data) < size:
            chunk = self.conn.recv(size - len(data))
            if not chunk:
                raise EOFError
            data += chunk
        return data

    def exchange(self, payload: bytes) -> bytes:
        self.send(payload)
        return self.receive()

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
        self.server.close()


@pytest.fixture
def vpcd() -> Iterator[FakeVpcd]:
    fake = FakeVpcd()
    yield fake
    fake.close()


@pytest.fixture
def bridge(vpcd: FakeVpcd) -> Iterator[VpcdCardProcess]:
    card = VpcdCardProcess(vpcd.port, "--card", "tests.idcard.tiny_card:TinyCard").start()
    yield card
    card.stop()


def test_control_messages_and_apdus(vpcd: FakeVpcd, bridge: VpcdCardProcess) -> None:
    vpcd.accept()  # the card connected before it said "ready"
    atr = TinyCard().power_on()
    assert vpcd.exchange(b"\x04") == atr  # ATR request
    vpcd.send(b"\x01")  # power on: no answer
    vpcd.send(b"\x02")  # reset: no answer
    assert vpcd.exchange(bytes.fromhex("00B0000004")) == bytes([0, 1, 2, 3, 0x90, 0x00])
    big = vpcd.exchange(bytes.fromhex("00B00000002000"))  # extended Le: 8 KB answer
    assert len(big) == 0x2000 + 2
    vpcd.send(b"\x00")  # power off: no answer
    assert vpcd.exchange(b"\x04") == atr
    stats = bridge.stats()
    assert stats["apdus"] == 2
    assert stats["power_on"] == 1
    assert stats["reset"] == 1
    assert stats["power_off"] == 1
    assert stats["ins_B0"] == 2


def test_remove_insert_and_drop(vpcd: FakeVpcd, bridge: VpcdCardProcess) -> None:
    vpcd.accept()
    bridge.remove()
    bridge.expect("disconnected")
    with pytest.raises(EOFError):
        vpcd.receive()
    bridge.insert()
    vpcd.accept()
    bridge.expect("connected")
    bridge.drop_after(1)
    assert vpcd.exchange(bytes.fromhex("00A4000C")) == b"\x90\x00"
    vpcd.send(bytes.fromhex("00B0000004"))  # never answered: the card is pulled mid-exchange
    bridge.expect("dropped")
    with pytest.raises(EOFError):
        vpcd.receive()
    assert bridge.stats()["drops"] == 1


def test_only_loopback() -> None:
    import subprocess
    import sys

    from tests.idcard.pcsc_testbed import REPO_ROOT

    out = subprocess.run([sys.executable, "-m", "agent.simulator.vpcd_card", "--port", "1", "--host", "10.0.0.1",
                          "--no-control"], capture_output=True, text=True, cwd=REPO_ROOT, timeout=30)
    assert out.returncode == 2
    assert "loopback" in out.stderr
