"""A fake ESC/POS receipt printer, run as its own process on a pty (socat) or a TCP port.

It answers DLE EOT n (n = 1, 2, 4) from the state in a control directory
(``paper``: ok | near | end, ``cover``: open | closed, ``mute``: present -> no answers)
and counts what it printed (``cuts``, ``bytes``) without keeping the content.

    python tests/printer/fake_escpos.py --control DIR (--serial PATH | --tcp PORT)
"""

from __future__ import annotations

import argparse
import functools
import os
import socket
from collections.abc import Callable
from pathlib import Path


def status_byte(n: int, control: Path) -> bytes | None:
    if (control / "mute").exists():
        return None
    paper = (control / "paper").read_text().strip() if (control / "paper").exists() else "ok"
    cover = (control / "cover").read_text().strip() if (control / "cover").exists() else "closed"
    value = 0x12
    if n == 1 and (cover == "open" or paper == "end"):
        value |= 0x08  # offline
    if n == 2:
        value |= 0x04 if cover == "open" else 0
        value |= 0x20 if paper == "end" else 0
    if n == 4:
        value |= {"ok": 0x00, "near": 0x0C, "end": 0x6C}.get(paper, 0)
    return bytes((value,))


def publish(control: Path, cuts: int, total: int) -> None:
    """Write the counters atomically: the test may read them at any moment."""
    for name, value in (("cuts", cuts), ("bytes", total)):
        tmp = control / f".{name}.tmp"
        tmp.write_text(str(value))
        os.replace(tmp, control / name)


def serve(read: Callable[[], bytes], write: Callable[[bytes], None], control: Path) -> None:
    state = "plain"  # a small state machine, so commands split across reads still parse
    cuts = total = 0
    while True:
        chunk = read()
        if not chunk:
            return
        total += len(chunk)
        for byte in chunk:
            if state == "dle-eot":
                # counts first: whoever reads the answer may look at them right away
                publish(control, cuts, total)
                answer = status_byte(byte, control)
                if answer is not None:
                    write(answer)
                state = "plain"
            elif state == "dle":
                state = "dle-eot" if byte == 0x04 else "plain"
            elif state == "gs":
                cuts += byte == 0x56
                state = "plain"
            elif byte == 0x10:
                state = "dle"
            elif byte == 0x1D:
                state = "gs"
        publish(control, cuts, total)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--control", type=Path, required=True)
    parser.add_argument("--serial")
    parser.add_argument("--tcp", type=int)
    args = parser.parse_args()
    control: Path = args.control
    if args.serial:
        fd = os.open(args.serial, os.O_RDWR | os.O_NOCTTY)
        (control / "ready").write_text("1")
        def write_pty(data: bytes) -> None:
            os.write(fd, data)

        serve(lambda: os.read(fd, 4096), write_pty, control)
        return
    server = socket.create_server(("127.0.0.1", args.tcp))
    (control / "ready").write_text("1")
    while True:
        conn, _ = server.accept()
        with conn:
            serve(functools.partial(conn.recv, 4096), conn.sendall, control)


if __name__ == "__main__":
    main()
