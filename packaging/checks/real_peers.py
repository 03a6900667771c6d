#!/usr/bin/env python3
"""The INSTALLED agent, with its own config, finds a card reader, a scanner and a printer.

    unshare -n -- real_peers.py run --out DIR
        (as root, by test_installed.py; in a network namespace of its own)
        Brings up ``lo`` (with multicast, for mDNS) and nothing else, so neither the agent's
        DNS-SD browsing (the packaged config browses every interface) nor avahi sends anything
        off this machine. Starts the test bed's real protocol peers, the same ones the test
        suite uses: a private pcscd with a vpcd reader and the emulated CCCD in it
        (tests/idcard/pcsc_testbed.py), the SANE ``test`` backend (a private SANE_CONFIG_DIR,
        tests/scanner/conftest.py), and ippeveprinter announced by avahi on a private D-Bus
        (tests/printer/peers.py). Then it runs the installed agent twice, each time with its
        unit's command (/etc/centre-agent/agent.toml, unchanged) as ``centre-agent``
        (run_like_systemd.py), with this script's ``inspect`` as the client:

        1. the packaged trust store is empty: the doctor must FAIL the test card's read with
           UNKNOWN_ISSUER (and the families the default expectation names but the test bed
           lacks: fingerprint, barcode);
        2. the card's CSCA is installed in /etc/centre-agent/csca, as the doctor said, and the
           agent restarted; the doctor, told what this counter must have (a copy of the
           packaged config whose only change is ``[doctor] expect``), must pass.

    real_peers.py inspect --mrz DOC BIRTH EXPIRY [--expect-config FILE]
        (the client, as root) waits until the installed ``centre-agent devices --json`` lists the
        vpcd reader (pcsc), the SANE test scanner (sane) and the ippeveprinter printer (ipp), then
        runs the installed ``centre-agent doctor`` as centre-agent, non-interactively.

Only environment variables point the libraries at the peers (PCSCLITE_CSOCK_NAME for
libpcsclite, SANE_CONFIG_DIR for libsane): they stand in for the hardware and the
system daemons' usual places, not for a config edit. Prints JSON; exits non-zero with the
reason on any deviation.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

CHECKS = Path(__file__).resolve().parent
REPO = CHECKS.parents[1]
sys.path.insert(0, str(REPO))  # the test bed's peer helpers (run with the repo's .venv python)
sys.path.insert(0, str(CHECKS))
# the same clean root shell, command runner and reading of the unit as the provisioning check
from enrol_flow import ENV, exec_start  # noqa: E402
from enrol_flow import run as sh  # noqa: E402

AGENT_UNIT = Path("/lib/systemd/system/centre-agent.service")
AGENT_CONFIG = Path("/etc/centre-agent/agent.toml")
CSCA_DIR = Path("/etc/centre-agent/csca")
INSTALLED_CSCA = CSCA_DIR / "ci-test-card-csca.der"
#: what a counter of this test bed has; the default expectation (every family whose backend is on)
#: also names fingerprint and barcode, which the test bed does not provide
COUNTER_FAMILIES = ("idcard", "scanner", "printer")
DEVICES_WAIT_S = 60.0


def loopback_only() -> list[str]:
    """Bring up lo with multicast; refuse to go on if any other interface is up (not a private netns)."""
    sh("ip", "link", "set", "lo", "up")
    sh("ip", "link", "set", "lo", "multicast", "on")
    links = json.loads(sh("ip", "-json", "link", "show").stdout)
    names = [link["ifname"] for link in links]
    if names != ["lo"]:
        raise SystemExit(f"not in a network namespace of our own: interfaces {names}")
    return names


# -- run: peers, then the installed agent twice ------------------------------------------------------

def run_agent(env: dict[str, str], client: list[str]) -> dict[str, Any]:
    """The unit's command as centre-agent, like systemd would; ``client`` runs (as root) while it serves."""
    setenv = [arg for name, value in env.items() for arg in ("--setenv", f"{name}={value}")]
    agent = subprocess.run([sys.executable, str(CHECKS / "run_like_systemd.py"), "--user", "centre-agent",
                            "--runtime-dir", "/run/centre-agent", *setenv, "--client", shlex.join(client),
                            "--client-timeout", "400", "--", *exec_start(AGENT_UNIT)],
                           capture_output=True, text=True, cwd="/", timeout=500, check=False)
    if agent.returncode != 0:
        raise SystemExit(f"the installed agent, run like its unit, failed: {agent.stdout[-4000:]} "
                         f"{agent.stderr[-2000:]}")
    supervised = json.loads(agent.stdout)
    seen: dict[str, Any] = json.loads(supervised["client"]["stdout"])
    seen["agent_status"] = supervised["messages"][0].get("STATUS", "")
    return seen


def expect_config(directory: Path) -> Path:
    """The packaged config with only ``[doctor] expect`` set, for the doctor (the agent never reads it)."""
    text = AGENT_CONFIG.read_text()
    wanted = "expect = " + json.dumps(list(COUNTER_FAMILIES))
    changed = text.replace("\nexpect = []\n", f"\n{wanted}\n")
    if changed.count(wanted) != 1:
        raise SystemExit(f"{AGENT_CONFIG}: no `expect = []` line under [doctor]")
    path = directory / "doctor-expect.toml"
    path.write_text(changed)
    path.chmod(0o644)  # the doctor runs as centre-agent
    return path


def run(out: Path) -> dict[str, Any]:
    from agent.drivers.idcard import mrz
    from agent.simulator.emrtd import sample_cccd
    from tests.idcard.pcsc_testbed import PcscdPeer, VpcdCardProcess, claim_socket_path
    from tests.printer.peers import IppEvePrinter, MdnsStack
    from tests.scanner.conftest import write_sane_config

    seen: dict[str, Any] = {"interfaces": loopback_only()}
    if INSTALLED_CSCA.exists():
        raise SystemExit(f"{INSTALLED_CSCA} exists before the check")
    key = mrz.parse(sample_cccd().mrz).key()
    work = Path(tempfile.mkdtemp(prefix="centre-ci-peers-"))
    work.chmod(0o755)  # the agent (centre-agent) reaches pcscd's socket and the SANE config in here
    pcscd = PcscdPeer(claim_socket_path())
    card: VpcdCardProcess | None = None
    mdns = MdnsStack(work / "mdns")
    printer: IppEvePrinter | None = None
    try:
        pcscd.start()
        card_csca = work / "card-csca.der"
        card = VpcdCardProcess(pcscd.port, "--csca-out", str(card_csca), reader=pcscd.reader_names[0])
        card.start(inserted=True)
        sane_dir = write_sane_config(work / "sane")
        mdns.start()
        printer = IppEvePrinter(work / "ippeve", mdns.bus_address)
        printer.start()
        # the test bed in place of hardware and of the daemons' usual sockets: not a config edit
        env = {"PCSCLITE_CSOCK_NAME": str(pcscd.socket_path), "SANE_CONFIG_DIR": str(sane_dir)}
        inspect = [sys.executable, str(CHECKS / "real_peers.py"), "inspect", "--mrz",
                   key.document_number, key.date_of_birth, key.date_of_expiry]
        seen["untrusted"] = run_agent(env, inspect)
        shutil.copyfile(card_csca, INSTALLED_CSCA)  # what the doctor told the installer to do
        INSTALLED_CSCA.chmod(0o644)
        seen["trusted"] = run_agent(env, [*inspect, "--expect-config", str(expect_config(work))])
    finally:
        INSTALLED_CSCA.unlink(missing_ok=True)
        if printer is not None:
            printer.stop()
        mdns.stop()
        if card is not None:
            card.stop()
        pcscd.cleanup()
        for log in (work / "ippeve" / "ippeveprinter.log", work / "mdns" / "avahi.log"):
            if log.exists():
                shutil.copyfile(log, out / log.name)
        shutil.rmtree(work, ignore_errors=True)
    return seen


# -- inspect: the client while the agent serves ------------------------------------------------------

def listed_devices() -> list[dict[str, Any]]:
    """``centre-agent devices --json`` (installed, as root) until reader, scanner and printer show up."""
    wanted = {("idcard", "pcsc"), ("scanner", "sane"), ("printer", "ipp")}
    rows: list[dict[str, Any]] = []
    deadline = time.monotonic() + DEVICES_WAIT_S
    while time.monotonic() < deadline:
        rows = json.loads(sh("centre-agent", "devices", "--json").stdout)
        ready = {(row["family"], row["backend"]) for row in rows if row["state"] == "ready"}
        if wanted <= ready:
            return rows
        time.sleep(0.5)
    raise SystemExit(f"not every test-bed device was listed within {DEVICES_WAIT_S:g} s: {rows}")


def inspect(card_mrz: list[str], doctor_config: str) -> dict[str, Any]:
    devices = listed_devices()
    command = ["runuser", "-u", "centre-agent", "--", "centre-agent", "doctor", "--no-gateway",
               "--no-finger", "--no-barcode", "--wait", "30", "--doc-number", card_mrz[0], "--birth-date",
               card_mrz[1], "--expiry-date", card_mrz[2]]
    if doctor_config:
        command += ["--config", doctor_config]
    doctor = subprocess.run(command, capture_output=True, text=True, env=ENV, cwd="/", timeout=300, check=False,
                            stdin=subprocess.DEVNULL)
    return {"devices": [{k: row[k] for k in ("family", "backend", "name", "state", "card_present") if k in row}
                        for row in devices],
            "doctor": {"command": shlex.join(command[4:]), "returncode": doctor.returncode,
                       "stdout": doctor.stdout, "stderr": doctor.stderr}}


def main() -> int:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="mode", required=True)
    r = sub.add_parser("run")
    r.add_argument("--out", required=True, help="where the peers' logs are left")
    i = sub.add_parser("inspect")
    i.add_argument("--mrz", nargs=3, required=True, metavar=("DOC", "BIRTH", "EXPIRY"))
    i.add_argument("--expect-config", default="")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root")
    seen = run(Path(args.out)) if args.mode == "run" else inspect(args.mrz, args.expect_config)
    json.dump(seen, sys.stdout, indent=1)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
