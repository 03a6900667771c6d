"""Static checks of the Debian packaging sources (the built packages are checked by scripts/ci-packaging.sh)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from agent.config import load_config

ROOT = Path(__file__).resolve().parents[2]
DEBIAN = ROOT / "packaging" / "debian"
PACKAGES = ("centre-agent", "centre-gateway")


@pytest.mark.parametrize("package", PACKAGES)
@pytest.mark.parametrize("script", ["postinst", "prerm", "postrm"])
def test_maintainer_script_is_valid_posix_sh(package: str, script: str) -> None:
    path = DEBIAN / package / script
    assert path.stat().st_mode & 0o111, f"{path} must be executable"
    text = path.read_text()
    assert text.startswith("#!/bin/sh\n")
    assert "\nset -e\n" in text
    result = subprocess.run(["sh", "-n", str(path)], capture_output=True, text=True, check=False)
    assert (result.returncode, result.stderr) == (0, "")


@pytest.mark.parametrize("package", PACKAGES)
def test_data_is_deleted_only_on_purge(package: str) -> None:
    postrm = (DEBIAN / package / "postrm").read_text()
    cases = dict(re.findall(r"\n(\w[\w|-]*)\)\n(.*?)\n    ;;", postrm, re.S))
    assert f"/var/lib/{package}" in cases["purge"]
    for case, body in cases.items():
        if case != "purge":
            assert f"/var/lib/{package}" not in body, case
    for script in ("prerm", "postinst"):
        assert f"rm -rf /var/lib/{package}" not in (DEBIAN / package / script).read_text()


def unguarded_systemctl(text: str) -> list[str]:
    """``systemctl`` lines outside an ``if [ -d /run/systemd/system ]; then ... fi`` block."""
    offenders = []
    guard: str | None = None  # indentation of the open guard's ``if``
    for line in text.splitlines():
        stripped = line.strip()
        indent = line[: len(line) - len(line.lstrip())]
        if stripped == "if [ -d /run/systemd/system ]; then" and guard is None:
            guard = indent
        elif stripped == "fi" and indent == guard:
            guard = None
        elif "systemctl" in stripped and not stripped.startswith("#") and guard is None:
            offenders.append(line)
    return offenders


@pytest.mark.parametrize("package", PACKAGES)
@pytest.mark.parametrize("script", ["postinst", "prerm", "postrm"])
def test_systemctl_runs_only_when_systemd_is_running(package: str, script: str) -> None:
    text = (DEBIAN / package / script).read_text()
    assert unguarded_systemctl(text) == []


def test_unguarded_systemctl_is_spotted() -> None:
    assert unguarded_systemctl("    systemctl daemon-reload\n") == ["    systemctl daemon-reload"]
    assert unguarded_systemctl("if [ -d /run/systemd/system ]; then\n    systemctl start x\nfi\n") == []


@pytest.mark.parametrize("package", PACKAGES)
def test_control_template_names_the_package(package: str) -> None:
    control = (DEBIAN / package / "control").read_text()
    fields = dict(re.findall(r"^([A-Za-z-]+): (.*)$", control, re.M))
    assert fields["Package"] == package
    assert fields["Version"] == "@VERSION@"
    assert "python3.11" in fields["Depends"]
    assert "adduser" in fields["Depends"]
    assert (DEBIAN / package / "conffiles").read_text().split() == [
        f"/etc/{package}/{package.removeprefix('centre-')}.toml"]


def test_agent_example_config_is_what_the_package_installs() -> None:
    example = ROOT / "config" / "agent.example.toml"
    assert load_config(example).agent.log_target == "stderr"
    # build.sh switches this line to journald for the packaged conffile
    assert re.search(r'^log_target = "stderr"', example.read_text(), re.M)


def test_gateway_example_config_exists_and_uses_the_state_directory() -> None:
    text = (ROOT / "config" / "gateway.example.toml").read_text()
    assert 'path = "/var/lib/centre-gateway/fleet.db"' in text


@pytest.mark.parametrize("script", ["packaging/debian/build.sh", "scripts/ci-packaging.sh",
                                    "scripts/ci.d/packaging.sh"])
def test_shell_scripts_parse(script: str) -> None:
    result = subprocess.run(["bash", "-n", str(ROOT / script)], capture_output=True, text=True, check=False)
    assert (result.returncode, result.stderr) == (0, "")
