"""The README's `centre-gateway token create` (no --config) on the gateway host issues a token
the running gateway knows: the CLI reads the gateway's own config by default."""

from __future__ import annotations

import os
import pwd
import subprocess
import sys
from pathlib import Path

from agent.provisioning.enroll import enroll
from agent.provisioning.identity import IdentityStore
from gateway.config_file import CONFIG_ENV
from tests.gateway.gateway_process import REPO
from tests.provisioning.conftest import CENTRE, SERVICE_USER
from tests.provisioning.pki import ProvisioningGateway, facts
from tests.support.agent_process import as_user


def test_token_create_without_config_serves_the_running_gateway(pgateway: ProvisioningGateway,
                                                                 tmp_path: Path) -> None:
    # the gateway's config stands in for /etc/centre-gateway/gateway.toml
    env = {**os.environ, "PYTHONPATH": str(REPO), CONFIG_ENV: str(pgateway.config_path)}
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    created = subprocess.run([sys.executable, "-m", "gateway.cli", "token", "create", "--centre", CENTRE],
                             capture_output=True, text=True, cwd=cwd, env=env, timeout=60)
    assert created.returncode == 0, created.stderr
    token = created.stdout.splitlines()[0]
    outcome = enroll(IdentityStore(tmp_path / "pc"), pgateway.enroll_target, token, facts(1),
                     ca_file=str(pgateway.ca_file), expected_centre=CENTRE)
    assert outcome.info.centre == CENTRE
    listed = subprocess.run([sys.executable, "-m", "gateway.cli", "agents", "--json"],
                            capture_output=True, text=True, cwd=cwd, env=env, timeout=60)
    assert '"agent_id": "hn-bd-001-001"' in listed.stdout, listed.stderr
    assert list(cwd.iterdir()) == []  # no stray database where the CLI ran


def test_operator_commands_as_root_leave_the_database_to_the_gateway_user(service_home: Path) -> None:
    """Run as root before the gateway ever started, `centre add` creates the SQLite database: it must
    belong to the gateway's user (here the owner of ``<service_home>/agent``), who then writes to it."""
    data = service_home / "agent"
    config = service_home / "gateway.toml"
    config.write_text(f'[storage]\nbackend = "sqlite"\npath = "{data / "fleet.db"}"\n')
    config.chmod(0o644)
    env = {**os.environ, "PYTHONPATH": str(REPO), CONFIG_ENV: str(config)}

    def cli(*args: str, user: str = "") -> subprocess.CompletedProcess[str]:
        return subprocess.run([*(as_user(user) if user else []), sys.executable, "-m", "gateway.cli", *args],
                              capture_output=True, text=True, cwd=REPO, env=env, timeout=60)

    added = cli("centre", "add", CENTRE, "--name", "Ba Dinh", "--province", "HN")
    assert added.returncode == 0, added.stderr
    account = pwd.getpwnam(SERVICE_USER)
    owners = {p.name: (p.stat().st_uid, p.stat().st_gid) for p in data.iterdir() if p.name.startswith("fleet.db")}
    assert owners == {"fleet.db": (account.pw_uid, account.pw_gid)}
    as_service = cli("centre", "add", "HN-CG-002", "--name", "Cau Giay", "--province", "HN", user=SERVICE_USER)
    assert as_service.returncode == 0, as_service.stderr
    assert [line.split()[0] for line in cli("centre", "list", user=SERVICE_USER).stdout.splitlines()] == [
        CENTRE, "HN-CG-002"]
