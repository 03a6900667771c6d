"""Resolving a DeviceRef to a device the caller may drive now."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import TypeVar

from agent.api.call import CallInfo
from agent.core.runtime import AgentRuntime
from agent.domain.device import DeviceFamily
from agent.drivers.base import Device
from agent.errors import InvalidRequestError
from centre.agent.v1 import common_pb2 as cpb

D = TypeVar("D", bound=Device)


def resolve(rt: AgentRuntime, ref: cpb.DeviceRef, family: DeviceFamily, call: CallInfo | None = None) -> str:
    if len(ref.lease_id) > 128:
        raise InvalidRequestError("lease_id longer than 128 characters")
    device_id = rt.registry.resolve(ref.device_id, family)
    if call is not None:
        call.targets.append(device_id)
    return device_id


@contextlib.asynccontextmanager
async def exclusive(rt: AgentRuntime, ref: cpb.DeviceRef, family: DeviceFamily, kind: type[D],
                    call: CallInfo) -> AsyncIterator[tuple[str, D]]:
    """The device, held for one operation under the caller's lease (explicit or implicit)."""
    device_id = resolve(rt, ref, family, call)
    async with rt.leases.operation(device_id, call.client_id, ref.lease_id):
        device = rt.registry.device(device_id, family)
        if not isinstance(device, kind):
            raise InvalidRequestError(f"device {device_id} is not a {kind.__name__}")
        yield device_id, device


def shared(rt: AgentRuntime, ref: cpb.DeviceRef, family: DeviceFamily, kind: type[D],
           call: CallInfo) -> tuple[str, D]:
    """The device for a read-only query (capabilities, status): lease checked, not taken."""
    device_id = resolve(rt, ref, family, call)
    rt.leases.check(device_id, call.client_id, ref.lease_id)
    device = rt.registry.device(device_id, family)
    if not isinstance(device, kind):
        raise InvalidRequestError(f"device {device_id} is not a {kind.__name__}")
    return device_id, device
