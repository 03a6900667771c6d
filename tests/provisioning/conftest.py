from __future__ import annotations

import os
import pwd
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.gateway.conftest import postgres, store, store_spec  # noqa: F401 - shared fixtures
from tests.provisioning.pki import ProvisioningGateway

CENTRE = "HN-BD-001"
SERVICE_USER = "nobody"  # plays centre-agent / centre-gateway: owns the state directory


@pytest.fixture
def pgateway_factory(store_spec: tuple[str, str], tmp_path: Path,  # noqa: F811 - fixture
                     ) -> Iterator[Callable[..., ProvisioningGateway]]:
    started: list[ProvisioningGateway] = []
    backend, where = store_spec

    def make(**kwargs: Any) -> ProvisioningGateway:
        process = ProvisioningGateway(tmp_path / f"gw{len(started)}", backend=backend,
                                      dsn=where if backend == "postgresql" else "", **kwargs)
        if backend == "sqlite":
            process.db_path = Path(where)
        started.append(process)
        process.start()
        return process

    yield make
    for process in started:
        process.stop()


@pytest.fixture
def pgateway(pgateway_factory: Callable[..., ProvisioningGateway]) -> ProvisioningGateway:
    gw = pgateway_factory()
    gw.cli("centre", "add", CENTRE, "--name", "Ba Dinh public service centre", "--province", "HN")
    gw.cli("centre", "add", "HN-CG-002", "--name", "Cau Giay public service centre", "--province", "HN")
    return gw


@pytest.fixture
def service_home() -> Iterator[Path]:
    """A directory the service user can reach (pytest's tmp_path is root-only): ``<it>/agent``
    belongs to the service user, like /var/lib/centre-agent does to centre-agent."""
    assert os.geteuid() == 0, "the test command runs as root (see README, Tests)"
    base = Path(tempfile.mkdtemp(prefix="centre-owner-"))
    try:
        base.chmod(0o755)
        account = pwd.getpwnam(SERVICE_USER)
        agent_dir = base / "agent"
        (agent_dir / "state").mkdir(parents=True)
        for path in (agent_dir, agent_dir / "state"):
            os.chown(path, account.pw_uid, account.pw_gid)
            path.chmod(0o750)
        yield base
    finally:
        shutil.rmtree(base)
