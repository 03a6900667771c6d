"""Put an emulated card on a vpcd virtual reader (vsmartcard's ``libifdvpcd`` in pcscd).

vpcd is a PC/SC reader driver that listens on TCP; a *virtual card* process connects
to it. Connected means "card inserted", disconnected means "card removed". Every
message either way is a 2-byte big-endian length and a payload (vsmartcard,
``virtualsmartcard/src/vpcd/vpcd.c``, ``sendToVICC``/``recvFromVICC``):

* a 1-byte payload from vpcd is a control message: ``0x00`` power off, ``0x01`` power
  on, ``0x02`` reset (no answer to any of them), ``0x04`` "send your ATR" (answered
  with the ATR; pcscd sends it every few hundred ms to poll card presence);
* any longer payload is a command APDU, answered with the response APDU.

Latency trap (TESTBED.md): Debian's vpcd waits for the ACK of its request before the
card's answer gets through, so each exchange stalls ~45 ms on TCP delayed ACK. The card
side therefore re-arms ``TCP_QUICKACK`` after *every* receive (the kernel clears it
again on its own) and sets ``TCP_NODELAY`` once.

Run it::

    python -m agent.simulator.vpcd_card --port 35963 --profile cccd

Control on stdin (one command a line), for tests and for people: ``insert``, ``remove``,
``drop-after N`` (answer N more APDUs, then vanish without answering the next one: a
card pulled mid-read), ``stats`` (print APDU counts as JSON), ``quit``. Status lines go
to stdout: ``ready``, ``connected``, ``disconnected``, ``dropped``, ``stats {...}``.
Nothing read from or sent to the card is ever printed.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import random
import selectors
import socket
import struct
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Protocol

from agent.drivers.idcard.dg13 import DG13_HEADERS

CTRL_POWER_OFF = 0x00
CTRL_POWER_ON = 0x01
CTRL_RESET = 0x02
CTRL_ATR = 0x04


class VirtualCard(Protocol):
    """What the bridge serves: the emulator's in-process card interface."""

    def power_on(self) -> bytes:
        """Reset the card and return its ATR."""
        ...

    def transmit(self, apdu: bytes) -> bytes:
        """Answer one command APDU (data + SW1 SW2)."""
        ...


class _PeerClosed(Exception):
    """vpcd closed the connection (pcscd stopped, or the reader was unloaded)."""


def _recv_exact(sock: socket.socket, size: int) -> bytes:
    chunks = bytearray()
    while len(chunks) < size:
        chunk = sock.recv(size - len(chunks))
        if not chunk:
            raise _PeerClosed
        # vpcd writes the length and the payload as two segments and Nagle holds the second
        # until the first is ACKed; the kernel leaves quick-ACK mode on its own, so re-arm it
        # after *every* receive or each message waits out the ~40 ms delayed-ACK timer.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
        chunks += chunk
    return bytes(chunks)


class VpcdCardBridge:
    """Serves ``card`` to vpcd at ``host:port``; keeps the card "inserted" until told otherwise.

    While inserted and not connected (pcscd not running yet, or restarting), it retries
    the connection every ``retry_interval`` seconds, like a card that stays on the reader.
    """

    def __init__(self, card: VirtualCard, port: int, *, host: str = "127.0.0.1",
                 inserted: bool = True, drop_after: int | None = None,
                 retry_interval: float = 0.05, delay: float = 0.0) -> None:
        self._card = card
        self._address = (host, port)
        self._want_inserted = inserted
        self._drop_after = drop_after
        self._retry_interval = retry_interval
        self._delay = delay
        self._sock: socket.socket | None = None
        self._atr = card.power_on()
        self._stats: Counter[str] = Counter()
        self._selector = selectors.DefaultSelector()
        self._running = True

    # -- status output ---------------------------------------------------------------------------

    @staticmethod
    def _say(line: str) -> None:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()

    # -- connection ------------------------------------------------------------------------------

    def _connect(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            sock.connect(self._address)
        except OSError:
            sock.close()
            return
        self._sock = sock
        self._selector.register(sock, selectors.EVENT_READ, "card")
        self._stats["connects"] += 1
        self._say("connected")

    def _disconnect(self, status: str = "disconnected") -> None:
        if self._sock is None:
            return
        self._selector.unregister(self._sock)
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        self._sock.close()
        self._sock = None
        self._say(status)

    def _send(self, payload: bytes) -> None:
        assert self._sock is not None
        self._sock.sendall(struct.pack(">H", len(payload)) + payload)

    # -- the vpcd protocol -----------------------------------------------------------------------

    def _serve_one(self) -> None:
        sock = self._sock
        assert sock is not None
        (length,) = struct.unpack(">H", _recv_exact(sock, 2))
        payload = _recv_exact(sock, length)
        if length == 1:
            self._control(payload[0])
            return
        self._stats["apdus"] += 1
        if len(payload) >= 2:
            self._stats[f"ins_{payload[1]:02X}"] += 1
        if self._drop_after is not None:
            if self._drop_after <= 0:
                # Pulled mid-read: the command is never answered and the card is gone.
                self._drop_after = None
                self._want_inserted = False
                self._stats["drops"] += 1
                self._disconnect("dropped")
                return
            self._drop_after -= 1
        response = self._card.transmit(payload)
        if self._delay:
            time.sleep(self._delay)  # a slow card (or a long contactless exchange)
        self._send(response)

    def _control(self, code: int) -> None:
        if code == CTRL_ATR:
            self._send(self._atr)
        elif code in (CTRL_POWER_ON, CTRL_RESET):
            self._stats["power_on" if code == CTRL_POWER_ON else "reset"] += 1
            self._atr = self._card.power_on()
        elif code == CTRL_POWER_OFF:
            self._stats["power_off"] += 1
            power_off = getattr(self._card, "power_off", None)
            if callable(power_off):
                power_off()
        # Unknown control bytes are ignored, as vpcd expects no answer to them.

    # -- stdin commands --------------------------------------------------------------------------

    def command(self, line: str) -> None:
        """Apply one control command (see the module docstring)."""
        words = line.split()
        if not words:
            return
        verb = words[0]
        if verb == "insert":
            self._want_inserted = True
            if self._sock is None:
                self._connect()
        elif verb == "remove":
            self._want_inserted = False
            self._disconnect()
        elif verb == "drop-after" and len(words) == 2 and words[1].isdigit():
            self._drop_after = int(words[1])
            self._say("armed")
        elif verb == "stats":
            stats = dict(self._stats)
            for name in ("mismatches", "sessions"):  # a recorded card's own counters
                value = getattr(self._card, name, None)
                if isinstance(value, int):
                    stats[name] = value
            self._say("stats " + json.dumps(stats, sort_keys=True))
        elif verb == "quit":
            self._running = False
        else:
            self._say("error unknown-command")

    # -- main loop -------------------------------------------------------------------------------

    def run(self, control: int | None) -> None:
        """Serve until ``quit`` (or end of the control stream)."""
        buffered = b""
        if control is not None:
            os.set_blocking(control, False)
            self._selector.register(control, selectors.EVENT_READ, "control")
        if self._want_inserted:
            self._connect()
        self._say("ready")
        while self._running:
            waiting = self._want_inserted and self._sock is None
            for key, _ in self._selector.select(self._retry_interval if waiting else None):
                if key.data == "card":
                    try:
                        self._serve_one()
                    except (_PeerClosed, OSError):
                        self._disconnect()
                elif key.data == "control":
                    chunk = os.read(control, 4096) if control is not None else b""
                    if not chunk:
                        self._selector.unregister(key.fileobj)
                        control = None
                        self._running = False
                        break
                    buffered += chunk
                    while b"\n" in buffered:
                        line, buffered = buffered.split(b"\n", 1)
                        self.command(line.decode("ascii", "replace"))
            if self._running and self._want_inserted and self._sock is None:
                self._connect()
        self._disconnect()


class _SeededRandom:
    """The emulator's random source for ``--replayable``: the card's challenges, session key
    halves and AA padding repeat after every power-on, so a recorded BAC session can be
    replayed byte for byte (the replay benchmark). Never for real use."""

    def __init__(self, seed: int) -> None:
        self._seed = seed
        self._rng = random.Random(seed)

    def reseed(self) -> None:
        self._rng.seed(self._seed)

    def token_bytes(self, size: int) -> bytes:
        return self._rng.randbytes(size)


class _ReplayableCard:
    """Reseeds the emulator's randomness on every power-on and reset."""

    def __init__(self, card: VirtualCard, randomness: _SeededRandom) -> None:
        self._card = card
        self._randomness = randomness

    def power_on(self) -> bytes:
        self._randomness.reseed()
        return self._card.power_on()

    def power_off(self) -> None:
        power_off = getattr(self._card, "power_off", None)
        if callable(power_off):
            power_off()

    def transmit(self, apdu: bytes) -> bytes:
        return self._card.transmit(apdu)


def build_card(args: argparse.Namespace) -> VirtualCard:
    """The card the command line asks for: an emulator profile with changes, or a factory."""
    if args.replay:
        from agent.simulator.replay_card import RecordedCard

        return RecordedCard.from_file(Path(args.replay))
    if args.card_factory:
        module_name, _, attr = args.card_factory.partition(":")
        factory = getattr(importlib.import_module(module_name), attr)
        card: VirtualCard = factory()
        return card
    from agent.simulator import emrtd

    changes: dict[str, object] = {}
    if args.no_pace:
        changes["pace"] = ()
    elif args.pace:
        offers = []
        for spec in args.pace:
            cipher, _, parameter = spec.partition(":")
            offers.append(emrtd.PaceOffer(cipher, int(parameter or "13")))
        changes["pace"] = tuple(offers)
    if args.no_extended_length:
        changes["extended_length"] = False
    if args.dg13_header:
        changes["dg13_header"] = args.dg13_header
    if args.canary:
        # A unique string planted in the holder data, for privacy canary tests.
        base = emrtd.sample_cccd() if args.profile == "cccd" else None
        if base is not None and base.dg13 is not None:
            dg13 = dict(base.dg13)
            dg13[9] = f"{args.canary} {dg13.get(9, '')}"
            changes["dg13"] = dg13
    profile = (emrtd.sample_cccd if args.profile == "cccd" else emrtd.sample_passport)(**changes)
    faults = emrtd.CardFaults(max_wrong_key_attempts=args.max_wrong_key_attempts)
    randomness = _SeededRandom(9303) if args.replayable else None
    emulated = emrtd.EmulatedEmrtd(profile, faults=faults,
                                   random_bytes=randomness.token_bytes if randomness else None)
    if args.csca_out:
        # The test CSCA is generated per process: hand its certificate (public) to the tests.
        Path(args.csca_out).write_bytes(emulated.issued.pki.csca_der)
    served: VirtualCard = emulated
    if randomness is not None:
        served = _ReplayableCard(emulated, randomness)
    return served


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m agent.simulator.vpcd_card",
                                     description="Serve an emulated eMRTD to a vpcd reader in pcscd.")
    parser.add_argument("--port", type=int, required=True, help="vpcd port (its CHANNELID / DEVICENAME)")
    parser.add_argument("--host", default="127.0.0.1", help="where vpcd listens (loopback only)")
    parser.add_argument("--profile", choices=("cccd", "passport"), default="cccd")
    parser.add_argument("--card", dest="card_factory", default=None,
                        help="module:callable returning a card object instead of a profile")
    parser.add_argument("--replay", default=None, metavar="FILE",
                        help="answer from a recorded session (agent.simulator.replay_card) instead")
    parser.add_argument("--no-pace", action="store_true", help="offer BAC only (no EF.CardAccess)")
    parser.add_argument("--pace", action="append", metavar="CIPHER[:PARAM_ID]",
                        help="offer PACE with this cipher (3DES, AES-128...) and domain parameter id")
    parser.add_argument("--no-extended-length", action="store_true",
                        help="the card refuses extended-length APDUs")
    parser.add_argument("--dg13-header", choices=DG13_HEADERS, default=None,
                        help="what DG13 carries ahead of its pairs (default: a version INTEGER)")
    parser.add_argument("--max-wrong-key-attempts", type=int, default=None,
                        help="block the card after this many failed BAC/PACE attempts")
    parser.add_argument("--csca-out", default=None, help="write the test CSCA certificate (DER) here")
    parser.add_argument("--canary", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--replayable", action="store_true",
                        help="repeat the card's randomness after each power-on (replay benchmark only)")
    parser.add_argument("--removed", action="store_true", help="start with the card off the reader")
    parser.add_argument("--drop-after", type=int, default=None,
                        help="answer N APDUs, then vanish mid-exchange (fault injection)")
    parser.add_argument("--delay-ms", type=float, default=0.0, help="answer every APDU this much later")
    parser.add_argument("--no-control", action="store_true", help="ignore stdin (run until killed)")
    args = parser.parse_args(argv)
    if not args.host.startswith("127.") and args.host != "localhost":
        parser.error("vpcd_card only talks to loopback")
    card = build_card(args)
    bridge = VpcdCardBridge(card, args.port, host=args.host, inserted=not args.removed,
                            drop_after=args.drop_after, delay=args.delay_ms / 1000)
    try:
        bridge.run(None if args.no_control else sys.stdin.fileno())
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
