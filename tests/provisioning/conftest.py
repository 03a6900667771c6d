from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.gateway.conftest import postgres, store, store_spec  # noqa: F401 - shared fixtures
from tests.provisioning.pki import ProvisioningGateway

CENTRE = "HN-BD-001"


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
