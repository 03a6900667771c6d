#!/usr/bin/env python3
"""The README's provisioning, on the INSTALLED packages, while the installed gateway runs.

    enrol_flow.py provision --enroll HOST:PORT --centre CODE
        (the client of run_like_systemd.py running centre-gateway; as root)
        centre add + token create with the installed centre-gateway CLI and NO --config (it must
        find /etc/centre-gateway/gateway.toml), `centre-agent enroll` as root exactly as the
        README says, checks the identity's owner and modes, approves the PC, then runs the
        agent the way its unit does (run_like_systemd.py, as centre-agent) with the client:

    enrol_flow.py wait-report --centre CODE
        waits until the gateway counts the agent online in its centre (it loaded its
        identity and reported over mTLS), then prints what the gateway says.

Prints JSON; exits non-zero with the reason on any deviation. Used by test_installed.py.
"""

from __future__ import annotations

import argparse
import json
import os
import pwd
import shlex
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

CHECKS = Path(__file__).resolve().parent
AGENT_UNIT = Path("/lib/systemd/system/centre-agent.service")
IDENTITY = Path("/var/lib/centre-agent/identity")
GATEWAY_CA = Path("/var/lib/centre-gateway/ca/ca.pem")
# a clean environment: what an installer's root shell has, without any CENTRE_* override
ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}


def run(*command: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(command, capture_output=True, text=True, env=ENV, cwd="/", timeout=timeout, check=False)
    if result.returncode != 0:
        raise SystemExit(f"{shlex.join(command)}: exit {result.returncode}: {result.stderr.strip()}")
    return result


def exec_start(unit: Path) -> list[str]:
    for line in unit.read_text().splitlines():
        if line.startswith("ExecStart="):
            return shlex.split(line.removeprefix("ExecStart="))
    raise SystemExit(f"{unit}: no ExecStart=")


def identity_owner_and_modes() -> dict[str, str]:
    found = {}
    for path in (IDENTITY, *sorted(IDENTITY.iterdir())):
        st = path.lstat()
        found[path.name] = f"{pwd.getpwuid(st.st_uid).pw_name}:{st.st_gid} {oct(stat.S_IMODE(st.st_mode))}"
    return found


def provision(enroll_target: str, centre: str) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    run("centre-gateway", "centre", "add", centre, "--name", "CI packaging centre", "--province", "HN")
    token = run("centre-gateway", "token", "create", "--centre", centre, "--uses", "1", "--ttl", "1h"
                ).stdout.splitlines()[0]
    with tempfile.TemporaryDirectory(prefix="centre-ci-root-") as root_home:
        token_file = Path(root_home) / "token"
        token_file.write_text(token + "\n")
        token_file.chmod(0o600)
        ca = Path(root_home) / "gateway-ca.pem"
        ca.write_bytes(GATEWAY_CA.read_bytes())  # what the installer is given
        enrolled = run("centre-agent", "enroll", "--gateway", enroll_target, "--token-file", str(token_file),
                       "--ca", str(ca), "--centre", centre)
        seen["enroll"] = enrolled.stdout.strip()
        if token_file.exists():
            raise SystemExit("the token file was not wiped")
    agent_gid = pwd.getpwnam("centre-agent").pw_gid
    seen["identity"] = identity_owner_and_modes()
    expected = {"identity": f"centre-agent:{agent_gid} 0o700",
                **{name: f"centre-agent:{agent_gid} 0o600" for name in ("ca.pem", "cert.pem", "identity.json",
                                                                         "key.pem")}}
    if seen["identity"] != expected:
        raise SystemExit(f"identity owner/modes {seen['identity']} != {expected}")
    pending = json.loads(run("centre-gateway", "agents", "--pending", "--json").stdout)["agents"]
    if len(pending) != 1:
        raise SystemExit(f"expected one pending agent, got {pending}")
    agent_id = pending[0]["agent_id"]
    run("centre-gateway", "approve", agent_id)
    seen["agent_id"] = agent_id
    client = f"{shlex.quote(sys.executable)} {shlex.quote(str(CHECKS / 'enrol_flow.py'))} wait-report " \
             f"--centre {shlex.quote(centre)}"
    agent = subprocess.run([sys.executable, str(CHECKS / "run_like_systemd.py"), "--user", "centre-agent",
                            "--runtime-dir", "/run/centre-agent", "--client", client, "--client-timeout", "200",
                            "--", *exec_start(AGENT_UNIT)],
                           capture_output=True, text=True, env=ENV, cwd="/", timeout=260, check=False)
    if agent.returncode != 0:
        raise SystemExit(f"the agent, run like its unit, failed: {agent.stdout[-3000:]} {agent.stderr[-2000:]}")
    supervised = json.loads(agent.stdout)
    seen["agent_ready"] = supervised["messages"][0]
    seen["reported"] = json.loads(supervised["client"]["stdout"])
    return seen


def wait_report(centre: str) -> dict[str, Any]:
    last: Any = None
    for _ in range(400):
        last = json.loads(run("centre-gateway", "fleet", "--json").stdout)
        rows = [c for c in last["centres"] if c["centre"] == centre]
        if rows and rows[0]["agents_online"] == 1:
            agents = json.loads(run("centre-gateway", "agents", "--json").stdout)["agents"]
            return {"fleet": rows[0], "agents": agents}
        time.sleep(0.5)
    raise SystemExit(f"the agent never reported to the gateway; fleet: {last}")


def main() -> int:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="mode", required=True)
    p = sub.add_parser("provision")
    p.add_argument("--enroll", required=True)
    p.add_argument("--centre", required=True)
    w = sub.add_parser("wait-report")
    w.add_argument("--centre", required=True)
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root, like the installer")
    seen = provision(args.enroll, args.centre) if args.mode == "provision" else wait_report(args.centre)
    json.dump(seen, sys.stdout, indent=1)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
