"""Every subcommand of both programs reads the installed config by default; --config and the
environment override it (agent/cli/config_file.py, gateway/config_file.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from agent.cli import config_file as agent_config_file
from gateway import config_file as gateway_config_file

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("module", [agent_config_file, gateway_config_file])
def test_the_rule(module: object, tmp_path: Path) -> None:
    config_path = module.config_path  # type: ignore[attr-defined]
    env_name = module.CONFIG_ENV  # type: ignore[attr-defined]
    installed = tmp_path / "installed.toml"
    # nothing installed, nothing asked for: built-in defaults
    assert config_path(None, {}, installed) is None
    installed.write_text("")
    assert str(config_path(None, {}, installed)) == str(installed)
    # the environment points elsewhere, or to no file at all
    assert str(config_path(None, {env_name: "/elsewhere.toml"}, installed)) == "/elsewhere.toml"
    assert config_path(None, {env_name: ""}, installed) is None
    # --config wins over both
    explicit = "/given.toml" if module is agent_config_file else Path("/given.toml")
    assert str(config_path(explicit, {env_name: "/elsewhere.toml"}, installed)) == "/given.toml"


def test_the_installed_paths_are_the_packaged_conffiles() -> None:
    conffiles = {line for p in ("centre-agent", "centre-gateway")
                 for line in (REPO / "packaging" / "debian" / p / "conffiles").read_text().split()}
    assert {str(agent_config_file.INSTALLED_CONFIG), str(gateway_config_file.INSTALLED_CONFIG)} <= conffiles


def _run(program: str, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    module = "agent" if program == "centre-agent" else "gateway.cli"
    return subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True, cwd=REPO,
                          env={**os.environ, "PYTHONPATH": str(REPO), **env}, timeout=60)


AGENT_COMMANDS = [
    # were the default not read, `run` would serve here (not on /run/centre-agent) until the test's timeout
    ("run", "--socket", "{tmp}/agent.sock", "--state-dir", "{tmp}/state", "--metrics", "", "--web", ""),
    ("doctor", "--simulate"),
    ("pair", "--list"),
    ("enroll", "--gateway", "127.0.0.1:9", "--token", "x"),
]
GATEWAY_COMMANDS = [
    ("run",),
    ("fleet",),
    ("devices", "--problem"),
    ("centre", "add", "HN-X", "--name", "X", "--province", "HN"),
    ("centre", "list"),
    ("token", "create", "--centre", "HN-X"),
    ("token", "revoke", "tid"),
    ("pc", "add", "--centre", "HN-X", "--serial", "S"),
    ("agents",),
    ("approve", "a"),
    ("revoke", "a"),
]


@pytest.mark.parametrize("args", AGENT_COMMANDS, ids=lambda a: a[0])
def test_every_agent_subcommand_reads_the_default_config(args: tuple[str, ...], tmp_path: Path) -> None:
    """A broken file at the default location stops every subcommand with exit 2 and a one-line
    error naming that file: proof that each one reads it."""
    broken = tmp_path / "broken.toml"
    broken.write_text("[no_such_section]\n")
    result = _run("centre-agent", *(a.format(tmp=tmp_path) for a in args), env={"CENTRE_AGENT_CONFIG": str(broken)})
    assert result.returncode == 2, result.stdout + result.stderr
    assert str(broken) in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


@pytest.mark.parametrize("args", GATEWAY_COMMANDS, ids=lambda a: "-".join(a[:2]))
def test_every_gateway_subcommand_reads_the_default_config(args: tuple[str, ...], tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    """In process, with the loader replaced: were the default not read, the gateway's built-in
    defaults would write /var/lib/centre-gateway, so nothing here may reach storage."""
    import gateway.cli
    from agent.errors import ConfigError

    seen: list[Path | None] = []

    def refuse(path: Path | None) -> object:
        seen.append(path)
        raise ConfigError(f"{path}: refused by the test")

    default = tmp_path / "gateway.toml"
    monkeypatch.setenv("CENTRE_GATEWAY_CONFIG", str(default))
    monkeypatch.setattr(gateway.cli, "load_config", refuse)
    assert gateway.cli.main(list(args)) == 2
    assert seen == [default]
    assert capsys.readouterr().err == f"centre-gateway: config error: {default}: refused by the test\n"
    # --config wins over the default
    explicit = tmp_path / "explicit.toml"
    assert gateway.cli.main([*args, "--config", str(explicit)]) == 2
    assert seen == [default, explicit]


def test_pair_without_config_uses_the_installed_state_dir(tmp_path: Path) -> None:
    config = tmp_path / "agent.toml"
    config.write_text(f'[agent]\nstate_dir = "{tmp_path / "state"}"\n')
    issued = _run("centre-agent", "pair", "--origin", "https://portal.example.gov.vn", "--config", str(config),
                  env={})
    assert issued.returncode == 0, issued.stderr
    # no --config: the default file (here named by the environment, as /etc/centre-agent/agent.toml would be)
    # gives the same state directory, so the pairing is there (read only: a regression writes nothing)
    listed = _run("centre-agent", "pair", "--list", "--json", env={"CENTRE_AGENT_CONFIG": str(config)})
    assert listed.returncode == 0, listed.stderr
    assert [row["origin"] for row in json.loads(listed.stdout)] == ["https://portal.example.gov.vn"]
