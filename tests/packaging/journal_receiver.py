"""A journald stand-in: owns /run/systemd/journal/socket in a private mount namespace.

Run under ``unshare -m --propagation private`` (the test does it): mounts a tmpfs
on /run (visible to this process tree only), binds the journal socket, runs the
command given after ``--``, collects every native-protocol datagram, and prints
the entries as one JSON list on stdout. With ``--stop-on TEXT`` the command gets
SIGTERM once it prints a line containing TEXT on its stdout (a readiness line).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

JOURNAL_SOCKET = "/run/systemd/journal/socket"


def parse_native(data: bytes) -> dict[str, str]:
    """journald's native protocol: ``KEY=value\\n``, or ``KEY\\n<le64 size><bytes>\\n`` for binary values."""
    fields: dict[str, str] = {}
    i = 0
    while i < len(data):
        nl = data.index(b"\n", i)
        line = data[i:nl]
        if b"=" in line:
            key, value = line.split(b"=", 1)
            i = nl + 1
        else:
            key = line
            size = int.from_bytes(data[nl + 1:nl + 9], "little")
            value = data[nl + 9:nl + 9 + size]
            i = nl + 9 + size + 1
        fields[key.decode()] = value.decode("utf-8", "replace")
    return fields


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--stop-on", default="")
    parser.add_argument("--timeout", type=float, default=60.0)
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    subprocess.run(["mount", "-t", "tmpfs", "tmpfs", "/run"], check=True)
    os.makedirs(os.path.dirname(JOURNAL_SOCKET))
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(JOURNAL_SOCKET)
    sock.settimeout(0.05)
    entries: list[dict[str, str]] = []
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)

    def watch_output() -> None:
        assert proc.stdout is not None
        signalled = False
        for line in proc.stdout:
            if args.stop_on and not signalled and args.stop_on in line:
                proc.send_signal(signal.SIGTERM)
                signalled = True

    watcher = threading.Thread(target=watch_output, daemon=True)
    watcher.start()
    deadline = time.monotonic() + args.timeout
    while True:
        try:
            entries.append(parse_native(sock.recv(1 << 20)))
            continue
        except TimeoutError:
            pass
        if proc.poll() is not None:
            break
        if time.monotonic() > deadline:
            proc.kill()
    # drain what was sent just before the exit
    sock.settimeout(0.2)
    try:
        while True:
            entries.append(parse_native(sock.recv(1 << 20)))
    except TimeoutError:
        pass
    watcher.join()
    json.dump({"returncode": proc.returncode, "entries": entries}, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
