from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from agent.core.leases import LeaseManager
from agent.domain.device import DeviceState
from agent.errors import DeviceBusyError, DeviceLeasedError, ForbiddenError, InvalidRequestError
from tests.core.fakes import ProbeDevice
from tests.core.test_registry import Harness


async def _setup(tmp: Path) -> tuple[Harness, LeaseManager, str]:
    h = Harness(tmp)
    dev = ProbeDevice("SN1", h.ctx)
    h.ctx.device_found(dev)
    await h.settle()
    return h, LeaseManager(h.registry, default_ttl=60), h.registry.device_id_of(dev)


async def test_second_client_is_refused_naming_the_holder(tmp_path: Path) -> None:
    h, leases, dev_id = await _setup(tmp_path)
    lease = leases.claim(dev_id, "portal-a")
    with pytest.raises(DeviceLeasedError) as err:
        leases.claim(dev_id, "portal-b")
    assert err.value.holder == "portal-a"
    assert "portal-a" in str(err.value)
    assert h.registry.info(dev_id).lease_holder == "portal-a"
    assert leases.claim(dev_id, "portal-a").lease_id == lease.lease_id  # re-claim extends
    with pytest.raises(ForbiddenError):
        leases.release(lease.lease_id, "portal-b")
    assert leases.release(lease.lease_id, "portal-a")
    assert not leases.release(lease.lease_id, "portal-a")
    leases.claim(dev_id, "portal-b")
    await h.registry.close()


async def test_expired_lease_is_released_automatically(tmp_path: Path) -> None:
    h, leases, dev_id = await _setup(tmp_path)
    leases.claim(dev_id, "portal-a", ttl=0.1)
    for _ in range(100):
        if leases.holder(dev_id) == "":
            break
        await asyncio.sleep(0.05)
    assert leases.holder(dev_id) == ""
    assert h.registry.info(dev_id).lease_holder == ""
    leases.claim(dev_id, "portal-b")
    await h.registry.close()


async def test_renew_keeps_the_lease(tmp_path: Path) -> None:
    h, leases, dev_id = await _setup(tmp_path)
    lease = leases.claim(dev_id, "a", ttl=1.0)
    await asyncio.sleep(0.1)
    leases.renew(lease.lease_id, "a", ttl=3.0)
    await asyncio.sleep(1.2)  # past the first expiry, well before the renewed one
    assert leases.holder(dev_id) == "a"
    with pytest.raises(InvalidRequestError):
        leases.renew("nope", "a")
    with pytest.raises(InvalidRequestError):
        leases.claim(dev_id, "a", ttl=99999)
    await h.registry.close()


async def test_idempotent_claim(tmp_path: Path) -> None:
    h, leases, dev_id = await _setup(tmp_path)
    first = leases.claim(dev_id, "a", request_id="r1")
    assert leases.claim(dev_id, "a", request_id="r1") == first
    await h.registry.close()


async def test_operation_marks_busy_and_excludes_a_second_operation(tmp_path: Path) -> None:
    h, leases, dev_id = await _setup(tmp_path)
    async with leases.operation(dev_id, "a"):
        assert h.registry.info(dev_id).state is DeviceState.BUSY
        with pytest.raises(DeviceBusyError):
            async with leases.operation(dev_id, "b"):
                pass
    assert h.registry.info(dev_id).state is DeviceState.READY
    lease = leases.claim(dev_id, "a")
    with pytest.raises(DeviceLeasedError):
        async with leases.operation(dev_id, "b"):
            pass
    async with leases.operation(dev_id, "a", lease.lease_id):
        pass
    await h.registry.close()
