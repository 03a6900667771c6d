#!/usr/bin/env python3
"""Start an installed daemon the way its systemd unit does, and supervise it like systemd would.

    run_like_systemd.py --user USER --runtime-dir DIR [--setenv NAME=VALUE]... [--client CMD]
                        [--client-timeout S] -- PROGRAM ARGS...

Creates the unit's RuntimeDirectory= (owned by USER, 0750; taken over if it exists, as
systemd does), runs PROGRAM as USER with NOTIFY_SOCKET (an abstract socket this script
owns) and WATCHDOG_USEC/WATCHDOG_PID set, waits for READY=1 and two watchdog pings, runs
the optional client command (a shell line, as root), sends SIGTERM, and expects
STOPPING=1 and exit status 0. Prints what it saw as JSON; exits non-zero on any
deviation. ``--setenv`` adds to PROGRAM's environment, like the unit's Environment= (the
real-peer check points libpcsclite and libsane at its test bed with it). Used by scripts/ci-packaging.sh (no systemd
runs on the CI machine).
"""

from __future__ import annotations

import argparse
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import time

WATCHDOG_USEC = 2_000_000


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--user", required=True)
    parser.add_argument("--runtime-dir", required=True)
    parser.add_argument("--setenv", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument("--client", default="")
    parser.add_argument("--timeout", type=float, default=60.0)
    parser.add_argument("--client-timeout", type=float, default=60.0)
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    account = pwd.getpwnam(args.user)

    # like systemd's RuntimeDirectory=: made (or taken over) for USER at start, removed at stop
    os.makedirs(args.runtime_dir, mode=0o750, exist_ok=True)
    os.chown(args.runtime_dir, account.pw_uid, account.pw_gid)
    os.chmod(args.runtime_dir, 0o750)  # noqa: S103 - RuntimeDirectoryMode=0750 of both units
    name = f"centre-ci-notify-{os.getpid()}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(b"\0" + name.encode())
    sock.settimeout(0.2)
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8", "NOTIFY_SOCKET": "@" + name,
           "WATCHDOG_USEC": str(WATCHDOG_USEC), "PYTHONDONTWRITEBYTECODE": "1"}
    for assignment in args.setenv:
        name, sep, value = assignment.partition("=")
        if not sep or not name:
            parser.error(f"--setenv {assignment!r}: expected NAME=VALUE")
        env[name] = value
    seen: dict[str, object] = {"messages": []}
    messages: list[dict[str, str]] = seen["messages"]  # type: ignore[assignment]
    proc = subprocess.Popen(["setpriv", f"--reuid={account.pw_uid}", f"--regid={account.pw_gid}", "--init-groups",
                             "--", *command], env=env, cwd="/", stdout=subprocess.DEVNULL)
    ok = False
    try:
        deadline = [time.monotonic() + args.timeout]  # restarted after the client ran
        def receive_until(predicate: str, count: int = 1) -> bool:
            while time.monotonic() < deadline[0]:
                if sum(1 for m in messages if predicate in m) >= count:
                    return True
                if proc.poll() is not None and predicate != "STOPPING":
                    return False
                try:
                    data = sock.recv(4096).decode()
                except TimeoutError:
                    continue
                messages.append(dict(line.split("=", 1) for line in data.split("\n") if "=" in line))
            return False

        if not receive_until("READY"):
            raise SystemExit(f"no READY=1 (exit status {proc.poll()})")
        if not receive_until("WATCHDOG", 2):
            raise SystemExit("no watchdog pings")
        if args.client:
            client = subprocess.run(args.client, shell=True, capture_output=True, text=True,  # noqa: S602
                                    timeout=args.client_timeout,
                                    check=False)
            seen["client"] = {"returncode": client.returncode, "stdout": client.stdout[-4000:],
                              "stderr": client.stderr[-4000:]}
            if client.returncode != 0:
                raise SystemExit(f"client failed: {client.stderr.strip()}")
        deadline[0] = time.monotonic() + args.timeout
        proc.send_signal(signal.SIGTERM)
        seen["returncode"] = proc.wait(timeout=60)
        receive_until("STOPPING")
        if not any("STOPPING" in m for m in messages):
            raise SystemExit("no STOPPING=1")
        if seen["returncode"] != 0:
            raise SystemExit(f"exit status {seen['returncode']} after SIGTERM")
        ok = True
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        sock.close()
        shutil.rmtree(args.runtime_dir, ignore_errors=True)
        json.dump(seen, sys.stdout, indent=1)
        print()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
