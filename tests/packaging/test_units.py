"""The systemd units: syntax (systemd-analyze verify), hardening (systemd-analyze security)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
UNITS = ROOT / "packaging" / "systemd"
#: exposure ceilings (0 = fully locked down, 10 = unprotected); the agent needs devices and the LAN
MAX_EXPOSURE = {"centre-agent": 2.0, "centre-gateway": 1.5}


def parse_unit(path: Path) -> dict[str, list[str]]:
    """``Section.Key`` -> every value assigned (systemd allows repeated keys)."""
    values: dict[str, list[str]] = {}
    section = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        values.setdefault(f"{section}.{key}", []).append(value)
    return values


def verifiable_copy(name: str, tmp_path: Path) -> Path:
    """The unit with ExecStart pointing at an existing program (verify checks it is executable)."""
    text = (UNITS / f"{name}.service").read_text()
    program = f"/opt/{name}/venv/bin/{name}"
    assert program in text
    stub = tmp_path / name
    stub.write_text("#!/bin/sh\nexit 0\n")
    stub.chmod(0o755)
    copy = tmp_path / f"{name}.service"
    copy.write_text(text.replace(program, str(stub)))
    return copy


@pytest.mark.parametrize("name", sorted(MAX_EXPOSURE))
def test_unit_passes_systemd_analyze_verify(name: str, tmp_path: Path) -> None:
    result = subprocess.run(["systemd-analyze", "verify", str(verifiable_copy(name, tmp_path))],
                            capture_output=True, text=True, check=False)
    # verify exits 0 on unknown keys but prints them: any output is a defect
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


def test_verify_catches_a_misspelt_directive(tmp_path: Path) -> None:
    copy = verifiable_copy("centre-agent", tmp_path)
    copy.write_text(copy.read_text().replace("NoNewPrivileges=yes", "NoNewPrivilege=yes"))
    result = subprocess.run(["systemd-analyze", "verify", str(copy)], capture_output=True, text=True, check=False)
    assert "Unknown key" in result.stderr


def exposure(unit: Path) -> float:
    result = subprocess.run(["systemd-analyze", "security", "--offline=yes", "--no-pager", str(unit)],
                            capture_output=True, text=True, check=False)
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", result.stdout + result.stderr)
    assert match, result.stdout + result.stderr
    return float(match.group(1))


@pytest.mark.parametrize("name", sorted(MAX_EXPOSURE))
def test_unit_exposure_is_low(name: str, tmp_path: Path) -> None:
    score = exposure(verifiable_copy(name, tmp_path))
    print(f"systemd-analyze security {name}.service: {score}")
    assert score <= MAX_EXPOSURE[name]


def test_exposure_rises_without_the_hardening(tmp_path: Path) -> None:
    """The score really measures these units (a plain unit scores far worse)."""
    copy = verifiable_copy("centre-agent", tmp_path)
    plain = [line for line in copy.read_text().splitlines()
             if not line.startswith(("Protect", "Private", "Restrict", "SystemCall", "Capability", "Device",
                                     "NoNewPrivileges", "LockPersonality", "User=", "Group="))]
    copy.write_text("\n".join(plain) + "\n")
    assert exposure(copy) > 8.0


@pytest.mark.parametrize("name", sorted(MAX_EXPOSURE))
def test_unit_is_a_hardened_notify_service(name: str) -> None:
    unit = parse_unit(UNITS / f"{name}.service")
    expected = {
        "Service.Type": ["notify"], "Service.NotifyAccess": ["main"], "Service.Restart": ["on-failure"],
        "Service.User": [name], "Service.Group": [name], "Service.StateDirectory": [name],
        "Service.RuntimeDirectory": [name], "Service.ProtectSystem": ["strict"], "Service.ProtectHome": ["yes"],
        "Service.NoNewPrivileges": ["yes"], "Service.PrivateTmp": ["yes"], "Service.DevicePolicy": ["closed"],
        "Service.CapabilityBoundingSet": [""], "Install.WantedBy": ["multi-user.target"],
    }
    for key, value in expected.items():
        assert unit.get(key) == value, key
    assert unit["Service.WatchdogSec"] == ["30s"]
    assert unit["Service.SystemCallFilter"][0] == "@system-service"
    assert unit["Service.ExecStart"] == [
        f"/opt/{name}/venv/bin/{name} run --config /etc/{name}/{name.removeprefix('centre-')}.toml"]


def test_agent_reaches_only_the_device_classes_it_drives() -> None:
    unit = parse_unit(UNITS / "centre-agent.service")
    assert sorted(unit["Service.DeviceAllow"]) == sorted([
        "char-usb_device rw", "char-usbmisc rw", "char-input rw", "char-hidraw rw",
        "char-ttyUSB rw", "char-ttyACM rw"])
    assert unit["Service.SupplementaryGroups"] == ["scanner lp dialout input plugdev"]
    assert unit["Service.RestrictAddressFamilies"] == ["AF_UNIX AF_INET AF_INET6 AF_NETLINK"]


def test_gateway_reaches_no_devices() -> None:
    unit = parse_unit(UNITS / "centre-gateway.service")
    assert "Service.DeviceAllow" not in unit
    assert "Service.SupplementaryGroups" not in unit
    assert unit["Service.PrivateDevices"] == ["yes"]
    assert unit["Service.RestrictAddressFamilies"] == ["AF_UNIX AF_INET AF_INET6"]

