"""Family RPCs through the real gRPC channel against the simulated devices."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from agent.client import AgentClient
from agent.daemon import RunningAgent
from agent.domain.device import DeviceFamily
from centre.agent.v1 import barcode_pb2 as bpb
from centre.agent.v1 import common_pb2 as cpb
from centre.agent.v1 import devices_pb2 as dpb
from centre.agent.v1 import idcard_pb2 as ipb
from tests.api.test_devices_api import wait_ready

QR = "001090004567|203004567|Nguyễn Văn Mẫu|15011990|Nam|Số 1 Đường Mẫu, Phường Mẫu|01022021"


async def test_parse_card_qr(client: AgentClient) -> None:
    data = await client.idcard.ParseCardQr(ipb.ParseCardQrRequest(text=QR))
    assert data.id_number == "001090004567"
    assert (data.date_of_birth.year, data.date_of_birth.month, data.date_of_birth.day) == (1990, 1, 15)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await client.idcard.ParseCardQr(ipb.ParseCardQrRequest(text="not|a|card"))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_barcode_scan_reaches_watchers_flagged_as_cccd(client: AgentClient, running: RunningAgent) -> None:
    await wait_ready(client)
    device_id = running.runtime.registry.resolve("", DeviceFamily.BARCODE)
    stream = client.barcode.WatchScans(bpb.WatchScansRequest(device=cpb.DeviceRef(device_id=device_id)))
    for _ in range(100):
        if running.runtime.bus.subscriber_count:
            break
        await asyncio.sleep(0.02)
    device = running.runtime.registry.device(device_id, DeviceFamily.BARCODE)
    inject = getattr(device, "inject", None) or getattr(device, "inject_text", None)
    assert inject is not None, "the simulated barcode scanner offers a way to inject a scan"
    inject(QR)
    scan = await asyncio.wait_for(stream.read(), 10)
    assert isinstance(scan, dpb.BarcodeScanned)
    assert scan.text == QR
    assert scan.cccd_qr
    stream.cancel()
