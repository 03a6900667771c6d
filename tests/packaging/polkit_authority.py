"""A private polkit authority: polkitd on a private D-Bus system bus, in a private mount namespace.

Run under ``unshare -m --propagation private`` (tests/packaging/test_polkit.py does):

    polkit_authority.py RULES_FILE WORKDIR USER...

Installs RULES_FILE as the only polkit rule, registers pcsc-lite's two actions
with deny-by-default (so only a rule can grant them), starts dbus-daemon and
polkitd, then for each USER runs a process under that account and asks the
authority (``pkcheck``) whether it may do each action. Prints
``{"user": {"action": true|false}}`` as JSON. Users missing from /etc/passwd get
an entry in a private copy. Every process started here is stopped by its pid.
"""

from __future__ import annotations

import json
import os
import pwd
import subprocess
import sys
import time
from pathlib import Path

ACTIONS = ("org.debian.pcsc-lite.access_pcsc", "org.debian.pcsc-lite.access_card")
POLKITD = "/usr/lib/polkit-1/polkitd"

POLICY = """<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE policyconfig PUBLIC "-//freedesktop//DTD PolicyKit Policy Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/PolicyKit/1/policyconfig.dtd">
<policyconfig>
{actions}
</policyconfig>
"""
ACTION = """  <action id="{id}">
    <description>{id}</description>
    <message>{id}</message>
    <defaults><allow_any>no</allow_any><allow_inactive>no</allow_inactive><allow_active>no</allow_active></defaults>
  </action>"""

BUS_CONFIG = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path={socket}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_destination="*"/>
    <allow receive_sender="*"/>
  </policy>
</busconfig>
"""


def bind(source: Path, target: str) -> None:
    subprocess.run(["mount", "--bind", str(source), target], check=True)


def main() -> int:
    rules_file, workdir, users = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3:]
    workdir.mkdir(parents=True, exist_ok=True)
    actions_dir = workdir / "actions"
    actions_dir.mkdir()
    (actions_dir / "org.debian.pcsc-lite.policy").write_text(
        POLICY.format(actions="\n".join(ACTION.format(id=a) for a in ACTIONS)))
    rules_dir = workdir / "rules.d"
    rules_dir.mkdir()
    (rules_dir / rules_file.name).write_text(rules_file.read_text())
    empty = workdir / "empty"
    empty.mkdir()
    bind(actions_dir, "/usr/share/polkit-1/actions")
    bind(rules_dir, "/etc/polkit-1/rules.d")
    bind(empty, "/usr/share/polkit-1/rules.d")
    missing = []
    for user in users:
        try:
            pwd.getpwnam(user)
        except KeyError:
            missing.append(user)
    if missing:
        passwd = workdir / "passwd"
        used = {p.pw_uid for p in pwd.getpwall()}
        free = iter(uid for uid in range(64000, 65000) if uid not in used)
        passwd.write_text(Path("/etc/passwd").read_text()
                          + "".join(f"{u}:x:{next(free)}:65534::/nonexistent:/usr/sbin/nologin\n" for u in missing))
        bind(passwd, "/etc/passwd")

    # polkitd drops to its own user: the bus socket must be reachable for it (pytest's tmp dirs are 0700)
    subprocess.run(["mount", "-t", "tmpfs", "tmpfs", "/run"], check=True)
    os.makedirs("/run/dbus")
    socket_path = Path("/run/dbus/system_bus_socket")
    (workdir / "bus.conf").write_text(BUS_CONFIG.format(socket=socket_path))
    env = {**os.environ, "DBUS_SYSTEM_BUS_ADDRESS": f"unix:path={socket_path}"}
    started: list[subprocess.Popen[bytes]] = []
    results: dict[str, dict[str, bool]] = {}
    try:
        bus = subprocess.Popen(["dbus-daemon", "--nofork", "--nopidfile", f"--config-file={workdir / 'bus.conf'}"])
        started.append(bus)
        deadline = time.monotonic() + 20
        while not socket_path.exists():
            if time.monotonic() > deadline or bus.poll() is not None:
                raise SystemExit("dbus-daemon did not start")
            time.sleep(0.02)
        with (workdir / "polkitd.log").open("wb") as log:
            polkitd = subprocess.Popen([POLKITD, "--no-debug"], env=env, stdout=subprocess.DEVNULL, stderr=log)
        started.append(polkitd)
        for user in users:
            account = pwd.getpwnam(user)
            subject = subprocess.Popen(["setpriv", f"--reuid={account.pw_uid}", f"--regid={account.pw_gid}",
                                        "--clear-groups", "sleep", "60"])
            started.append(subject)
            # ask only once setpriv has switched: a subject still running as root is always authorized
            status = Path(f"/proc/{subject.pid}/status")
            while f"\t{account.pw_uid}\t" not in next(
                    line for line in status.read_text().splitlines() if line.startswith("Uid:")) + "\t":
                time.sleep(0.01)
            results[user] = {}
            for action in ACTIONS:
                deadline = time.monotonic() + 30
                while True:
                    check = subprocess.run(["pkcheck", "--action-id", action, "--process", str(subject.pid)],
                                           env=env, capture_output=True, text=True, check=False)
                    # 0 authorized, 1 not authorized; anything else: the authority is not up yet
                    if check.returncode in (0, 1) or time.monotonic() > deadline:
                        break
                    time.sleep(0.1)
                if check.returncode not in (0, 1):
                    raise SystemExit(f"pkcheck failed ({check.returncode}): {check.stderr.strip()}")
                results[user][action] = check.returncode == 0
    finally:
        for proc in reversed(started):
            proc.terminate()
            proc.wait()
    json.dump(results, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
