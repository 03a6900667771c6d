"""The README's `centre-gateway token create` (no --config) on the gateway host issues a token
the running gateway knows: the CLI reads the gateway's own config by default."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from agent.provisioning.enroll import enroll
from agent.provisioning.identity import IdentityStore
from gateway.config_file import CONFIG_ENV
from tests.gateway.gateway_process import REPO
from tests.provisioning.conftest import CENTRE
from tests.provisioning.pki import ProvisioningGateway, facts


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
