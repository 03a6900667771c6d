"""Checks of the INSTALLED Debian packages; run by scripts/ci-packaging.sh after ``dpkg -i``.

Not part of the normal test run (pytest's testpaths is tests/): these need the
packages installed on the machine, as root, which only the CI packaging step does.
"""

from __future__ import annotations

import grp
import json
import os
import pwd
import re
import shlex
import socket
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

CHECKS = Path(__file__).resolve().parent
PACKAGES = ("centre-agent", "centre-gateway")
DEVICE_GROUPS = {"scanner", "lp", "dialout", "input", "plugdev"}


def run(*command: str, user: str = "") -> subprocess.CompletedProcess[str]:
    if user:
        command = ("runuser", "-u", user, "--", *command)
    return subprocess.run(command, capture_output=True, text=True, timeout=300, check=False, cwd="/")


def owner_mode(path: str) -> tuple[str, str, str]:
    st = os.lstat(path)
    return pwd.getpwuid(st.st_uid).pw_name, grp.getgrgid(st.st_gid).gr_name, oct(stat.S_IMODE(st.st_mode))


@pytest.mark.parametrize("package", PACKAGES)
def test_package_is_installed(package: str) -> None:
    status = run("dpkg-query", "-W", "-f=${Status}", package).stdout
    assert status == "install ok installed"


@pytest.mark.parametrize("package", PACKAGES)
def test_package_files_are_intact(package: str) -> None:
    result = run("dpkg", "--verify", package)
    assert (result.returncode, result.stdout) == (0, "")


@pytest.mark.parametrize("package", PACKAGES)
def test_service_user_is_a_locked_system_account(package: str) -> None:
    account = pwd.getpwnam(package)
    assert account.pw_uid < 1000
    assert account.pw_shell in ("/usr/sbin/nologin", "/bin/false")
    assert account.pw_dir == f"/var/lib/{package}"
    assert grp.getgrgid(account.pw_gid).gr_name == package


def test_agent_user_is_in_the_device_groups() -> None:
    groups = {g.gr_name for g in grp.getgrall() if "centre-agent" in g.gr_mem}
    assert groups >= DEVICE_GROUPS


def test_gateway_user_has_no_device_groups() -> None:
    assert not [g.gr_name for g in grp.getgrall() if "centre-gateway" in g.gr_mem]


@pytest.mark.parametrize(("path", "expected"), [
    ("/etc/centre-agent", ("root", "centre-agent", "0o750")),
    ("/etc/centre-agent/agent.toml", ("root", "centre-agent", "0o640")),
    ("/var/lib/centre-agent", ("centre-agent", "centre-agent", "0o750")),
    ("/lib/systemd/system/centre-agent.service", ("root", "root", "0o644")),
    ("/lib/udev/rules.d/60-centre-agent.rules", ("root", "root", "0o644")),
    ("/usr/share/polkit-1/rules.d/60-centre-agent.rules", ("root", "root", "0o644")),
    ("/opt/centre-agent/venv/bin/centre-agent", ("root", "root", "0o755")),
    ("/etc/centre-gateway", ("root", "centre-gateway", "0o750")),
    ("/etc/centre-gateway/gateway.toml", ("root", "centre-gateway", "0o640")),
    ("/var/lib/centre-gateway", ("centre-gateway", "centre-gateway", "0o750")),
    ("/lib/systemd/system/centre-gateway.service", ("root", "root", "0o644")),
    ("/opt/centre-gateway/venv/bin/centre-gateway", ("root", "root", "0o755")),
    ("/usr/share/centre-gateway/prometheus/alerts.yml", ("root", "root", "0o644")),
    ("/usr/share/centre-gateway/grafana/centre-fleet.json", ("root", "root", "0o644")),
])
def test_owner_and_mode(path: str, expected: tuple[str, str, str]) -> None:
    assert owner_mode(path) == expected


@pytest.mark.parametrize("package", PACKAGES)
def test_code_is_root_owned_and_not_writable_by_others(package: str) -> None:
    offenders = []
    for base, dirs, files in os.walk(f"/opt/{package}"):
        for name in dirs + files:
            path = os.path.join(base, name)
            st = os.lstat(path)
            if stat.S_ISLNK(st.st_mode):
                continue
            if st.st_uid != 0 or st.st_mode & 0o022:
                offenders.append(path)
    assert offenders == []


@pytest.mark.parametrize("package", PACKAGES)
def test_command_on_path_is_the_venv_one(package: str) -> None:
    assert os.readlink(f"/usr/bin/{package}") == f"/opt/{package}/venv/bin/{package}"
    first_line = Path(f"/opt/{package}/venv/bin/{package}").read_text().splitlines()[0]
    assert first_line == f"#!/opt/{package}/venv/bin/python"


@pytest.mark.parametrize("package", PACKAGES)
def test_venv_runs_on_debians_python(package: str) -> None:
    result = run(f"/opt/{package}/venv/bin/python", "-c",
                 "import sys, json; print(json.dumps([sys.base_prefix, sys.version_info[:2], sys.prefix]))")
    base, version, prefix = json.loads(result.stdout)
    assert base == "/usr"
    assert version == [3, 11]
    assert prefix == f"/opt/{package}/venv"


def test_agent_native_modules_load_as_the_service_user() -> None:
    code = ("import grpc, sane, cups, smartcard.System, evdev, serial, systemd.daemon, systemd.journal, img2pdf, "
            "zeroconf, cryptography, gi; gi.require_version('FPrint', '2.0'); from gi.repository import FPrint; "
            "import agent.daemon, agent.systemd_notify, agent.journal; print('ok')")
    result = run("/opt/centre-agent/venv/bin/python", "-c", code, user="centre-agent")
    assert result.stdout.strip() == "ok", result.stderr


def test_gateway_venv_carries_the_project() -> None:
    result = run("/opt/centre-gateway/venv/bin/python", "-c",
                 "import grpc, psycopg, systemd.daemon, agent.systemd_notify, gateway.cli, gateway.server, centre; "
                 "print('ok')",
                 user="centre-gateway")
    assert result.stdout.strip() == "ok", result.stderr


def test_no_byte_code_is_written_at_run_time() -> None:
    run("/opt/centre-agent/venv/bin/centre-agent", "--help", user="centre-agent")
    result = run("find", "/opt/centre-agent", "-newer", "/var/lib/centre-agent", "-not", "-type", "d")
    assert result.stdout == ""


def test_installed_agent_config_is_valid_and_logs_to_journald() -> None:
    result = run("/opt/centre-agent/venv/bin/python", "-c",
                 "from agent.config import load_config; c = load_config('/etc/centre-agent/agent.toml'); "
                 "print(c.agent.log_target, c.agent.socket, c.agent.state_dir)", user="centre-agent")
    assert result.stdout.split() == ["journald", "/run/centre-agent/agent.sock", "/var/lib/centre-agent"], \
        result.stderr


@pytest.mark.parametrize("package", PACKAGES)
def test_installed_unit_passes_verify(package: str) -> None:
    result = run("systemd-analyze", "verify", f"/lib/systemd/system/{package}.service")
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


@pytest.mark.parametrize("package", PACKAGES)
def test_installed_unit_exposure(package: str) -> None:
    result = run("systemd-analyze", "security", "--offline=yes", "--no-pager", f"/lib/systemd/system/{package}.service")
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", result.stdout + result.stderr)
    assert match, result.stdout + result.stderr
    print(f"{package}.service exposure {match.group(1)}")
    assert float(match.group(1)) <= 2.0


@pytest.mark.parametrize("package", PACKAGES)
def test_unit_is_enabled_for_boot(package: str) -> None:
    link = Path(f"/etc/systemd/system/multi-user.target.wants/{package}.service")
    assert os.readlink(link) == f"/lib/systemd/system/{package}.service"


def test_doctor_simulate_passes_as_the_service_user() -> None:
    result = run("/usr/bin/centre-agent", "doctor", "--simulate", user="centre-agent")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "doctor: all checks passed" in result.stdout


def test_agent_runs_like_its_unit_and_answers_on_its_socket() -> None:
    client = ("/usr/bin/centre-agent devices --json --socket /run/centre-agent/agent.sock && "
              "stat -c '%U:%G %a' /run/centre-agent/agent.sock")
    result = run(sys.executable, str(CHECKS / "run_like_systemd.py"), "--user", "centre-agent",
                 "--runtime-dir", "/run/centre-agent", "--client", client, "--",
                 "/opt/centre-agent/venv/bin/centre-agent", "run", "--simulate", "--metrics", "127.0.0.1:0",
                 "--config", "/etc/centre-agent/agent.toml")
    assert result.returncode == 0, result.stdout + result.stderr
    seen = json.loads(result.stdout)
    assert seen["messages"][0]["READY"] == "1"
    assert seen["messages"][0]["STATUS"].startswith("serving socket=/run/centre-agent/agent.sock")
    lines = seen["client"]["stdout"].strip().splitlines()
    devices = json.loads("\n".join(lines[:-1]))
    assert {d["family"] for d in devices} == {"idcard", "fingerprint", "scanner", "printer", "barcode"}
    assert lines[-1] == "centre-agent:centre-agent 660"


def _doctor_lines(run: dict[str, Any], transcript: Path) -> list[str]:
    """The doctor's output lines; the whole run is added to ``transcript`` (scripts/ci-packaging.sh shows it)."""
    doctor = run["doctor"]
    with transcript.open("a") as f:
        f.write(f"$ {doctor['command']}\n{doctor['stderr']}{doctor['stdout']}(exit status {doctor['returncode']})\n")
    return list(doctor["stdout"].splitlines())


def test_installed_agent_finds_the_real_peers_with_its_own_config() -> None:
    """The installed package on a PC with pcscd and a reader, a SANE scanner and an IPP printer, with no
    config edit: a vpcd reader holding the emulated CCCD, the SANE test backend, ippeveprinter announced
    by avahi. All of it, the agent included, runs in a network namespace of its own with only lo
    (packaging/checks/real_peers.py)."""
    out = CHECKS.parent / "debian" / "out"  # the peers' logs land next to installed-checks.log
    out.mkdir(parents=True, exist_ok=True)
    transcript = out / "real-peers-doctor.txt"
    transcript.unlink(missing_ok=True)
    shipped = Path("/etc/centre-agent/agent.toml").read_text()
    result = run("unshare", "-n", "--", sys.executable, str(CHECKS / "real_peers.py"), "run", "--out", str(out))
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
    assert Path("/etc/centre-agent/agent.toml").read_text() == shipped
    assert list(Path("/etc/centre-agent/csca").iterdir()) == []
    seen = json.loads(result.stdout)
    assert seen["interfaces"] == ["lo"]

    untrusted, trusted = seen["untrusted"], seen["trusted"]
    for phase in (untrusted, trusted):
        assert phase["agent_status"].startswith("serving socket=/run/centre-agent/agent.sock")
        listed = {(d["family"], d["backend"]) for d in phase["devices"] if d["state"] == "ready"}
        assert {("idcard", "pcsc"), ("scanner", "sane"), ("printer", "ipp")} <= listed
        readers = [d for d in phase["devices"] if d["family"] == "idcard"]
        assert [d["card_present"] for d in readers if d["name"] == "Centre Test PCD 00 00"] == [True]
        assert any(d["name"] == "CentreTestPrinter" for d in phase["devices"] if d["backend"] == "ipp")

    # the packaged trust store is empty: the test card's read FAILs with the CSCA to install and where
    lines = _doctor_lines(untrusted, transcript)
    assert untrusted["doctor"]["returncode"] == 1
    card = [line for line in lines if line.startswith("FAIL  idcard: read the test card: ")]
    assert len(card) == 1, lines
    assert "passive unknown_issuer" in card[0]
    assert "in /etc/centre-agent/csca ([idcard] csca_dir), then restart the agent" in card[0]
    # by default every family whose backend is on must be there: libfprint and evdev are on, the test
    # bed has no fingerprint sensor and no barcode scanner
    assert [line.split(":")[0] for line in lines if line.startswith("FAIL")] == \
        ["FAIL  fingerprint", "FAIL  barcode", "FAIL  idcard"], lines
    assert lines[-1] == "doctor: some checks FAILED"

    # CSCA installed, agent restarted, the counter's families stated: every check passes
    lines = _doctor_lines(trusted, transcript)
    assert trusted["doctor"]["returncode"] == 0, lines
    assert [line for line in lines if line.startswith("FAIL")] == []
    assert any(line.startswith("PASS  idcard: read the test card: ") and "passive valid (on Centre Test PCD 00 00)"
               in line for line in lines), lines
    for wanted in ("PASS  idcard: found", "PASS  scanner: found", "PASS  printer: found", "PASS  pcscd"):
        assert any(line.startswith(wanted) for line in lines), (wanted, lines)
    scans = [line for line in lines if line.startswith("PASS  scanner ") and ": scan a test page: " in line]
    prints = [line for line in lines if line.startswith("PASS  printer CentreTestPrinter ")
              and ": print a test page: " in line]
    assert scans, lines
    assert prints, lines
    assert lines[-1] == "doctor: all checks passed"


def test_installed_gateway_config_is_valid() -> None:
    result = run("/opt/centre-gateway/venv/bin/python", "-c",
                 "from pathlib import Path; from gateway.config import load_config; "
                 "c = load_config(Path('/etc/centre-gateway/gateway.toml')); print(c.storage_path)",
                 user="centre-gateway")
    assert result.stdout.strip() == "/var/lib/centre-gateway/fleet.db", result.stderr


def test_gateway_runs_like_its_unit() -> None:
    """As centre-gateway, READY/WATCHDOG/STOPPING to a socket we own; loopback ports (the shipped config
    listens on 0.0.0.0 for agents, which CI must not)."""
    shipped = Path("/etc/centre-gateway/gateway.toml").read_text()
    local = re.sub(r'^grpc_listen = "[^"]*"', 'grpc_listen = "127.0.0.1:0"', shipped, flags=re.M)
    local = re.sub(r'^http_listen = "[^"]*"', 'http_listen = "127.0.0.1:0"', local, flags=re.M)
    config = Path("/etc/centre-gateway/ci-loopback.toml")
    config.write_text(local)
    os.chown(config, 0, grp.getgrnam("centre-gateway").gr_gid)
    config.chmod(0o640)
    try:
        result = run(sys.executable, str(CHECKS / "run_like_systemd.py"), "--user", "centre-gateway",
                     "--runtime-dir", "/run/centre-gateway", "--",
                     "/opt/centre-gateway/venv/bin/centre-gateway", "run", "--config", str(config))
    finally:
        config.unlink()
    assert result.returncode == 0, result.stdout + result.stderr
    seen = json.loads(result.stdout)
    assert seen["messages"][0]["READY"] == "1"
    assert seen["messages"][0]["STATUS"].startswith("serving grpc=127.0.0.1:")
    assert Path("/var/lib/centre-gateway/fleet.db").exists()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_enrolled_agent_runs_as_its_user_and_reports_to_the_gateway() -> None:
    """The README's provisioning on the installed packages: the installed gateway (its unit's command,
    as centre-gateway, [identity] on, loopback) gets a centre and a token from the installed CLI with
    no --config; `centre-agent enroll` runs as root; the agent then runs as centre-agent like its
    unit and reports over mTLS (packaging/checks/enrol_flow.py)."""
    gateway_toml = Path("/etc/centre-gateway/gateway.toml")
    agent_toml = Path("/etc/centre-agent/agent.toml")
    shipped_gateway, shipped_agent = gateway_toml.read_text(), agent_toml.read_text()
    enroll_port = _free_port()
    before, _, identity = shipped_gateway.partition("[identity]")
    local = before + "[identity]" + re.sub(r"^enabled = false", "enabled = true", identity, flags=re.M)
    for key, value in (("grpc_listen", '"127.0.0.1:0"'), ("http_listen", '"127.0.0.1:0"'),
                       ("enroll_listen", f'"127.0.0.1:{enroll_port}"'),
                       ("server_names", '["127.0.0.1", "localhost"]')):
        local, count = re.subn(rf"^{key} = .*$", f"{key} = {value}", local, flags=re.M)
        assert count == 1, key
    assert re.search(r"^enabled = true", local.partition("[identity]")[2], flags=re.M)
    # the first report comes after a random delay of up to 90 s (a fleet restarting at once spreads out)
    quick = re.sub(r"^first_delay_max_seconds = .*$", "first_delay_max_seconds = 1.0", shipped_agent, flags=re.M)
    assert quick != shipped_agent
    unit = Path("/lib/systemd/system/centre-gateway.service").read_text()
    command = shlex.split(next(line for line in unit.splitlines() if line.startswith("ExecStart="))
                          .removeprefix("ExecStart="))
    try:
        gateway_toml.write_text(local)  # file, owner and mode stay the conffile's
        agent_toml.write_text(quick)
        client = f"{sys.executable} {CHECKS / 'enrol_flow.py'} provision --enroll 127.0.0.1:{enroll_port} " \
                 "--centre CI-PKG-001"
        result = run(sys.executable, str(CHECKS / "run_like_systemd.py"), "--user", "centre-gateway",
                     "--runtime-dir", "/run/centre-gateway", "--client", client, "--client-timeout", "280",
                     "--", *command)
    finally:
        gateway_toml.write_text(shipped_gateway)
        agent_toml.write_text(shipped_agent)
    assert result.returncode == 0, result.stdout + result.stderr
    flow = json.loads(json.loads(result.stdout)["client"]["stdout"])
    print(json.dumps(flow, indent=1))
    assert flow["enroll"].startswith(f"enrolled as {flow['agent_id']} in centre CI-PKG-001")
    assert flow["agent_ready"]["STATUS"].startswith("serving socket=/run/centre-agent/agent.sock")
    assert flow["reported"]["fleet"]["agents_online"] == 1
    assert [(a["agent_id"], a["status"]) for a in flow["reported"]["agents"]] == [(flow["agent_id"], "active")]
