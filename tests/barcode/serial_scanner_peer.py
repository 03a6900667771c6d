"""A serial barcode scanner on a pty, as its own process (test peer).

Prints the pty path, then takes stdin lines: ``SCAN <text>`` (sent with CR LF),
``LF <text>`` (sent with a bare LF), ``FLOOD <n>`` (n bytes without terminator, then CR LF),
``BURST <n> <text>`` (n scans written at once). Each answered ``OK``.
"""

from __future__ import annotations

import os
import sys
import tty


def main() -> int:
    master, slave = os.openpty()
    tty.setraw(slave)
    print(os.ttyname(slave), flush=True)
    for raw in sys.stdin:
        verb, _, arg = raw.rstrip("\n").partition(" ")
        if verb == "SCAN":
            data = arg.encode() + b"\r\n"
        elif verb == "LF":
            data = arg.encode() + b"\n"
        elif verb == "FLOOD":
            data = b"A" * int(arg) + b"\r\n"
        elif verb == "BURST":
            count, _, text = arg.partition(" ")
            data = (text.encode() + b"\r\n") * int(count)
        else:
            print("ERR", flush=True)
            continue
        view = memoryview(data)
        while view:
            view = view[os.write(master, view):]
        print("OK", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
