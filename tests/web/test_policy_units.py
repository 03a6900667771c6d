"""The guard's building blocks on their own: host and origin parsing, token buckets, the pairing store."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from agent.api.pairing import PairingStore
from agent.api.web_security import TokenBuckets, is_loopback_host
from agent.config import load_config, normalize_origin
from agent.errors import ConfigError, InvalidRequestError


@pytest.mark.parametrize(("host", "ok"), [
    ("localhost", True), ("localhost:8765", True), ("127.0.0.1:1", True), ("127.9.9.9", True), ("[::1]:80", True),
    ("[::1]", True), ("LOCALHOST:8765", True),
    ("evil.example", False), ("127.0.0.1.evil.example", False), ("localhost.evil.example:80", False),
    ("[::1].evil", False), ("[::ffff:7f00:1]x", False), ("0.0.0.0", False), ("192.168.1.10", False), ("", False),
    ("127.0.0.1:http", False), ("::1", False),
])
def test_loopback_hosts(host: str, ok: bool) -> None:
    assert is_loopback_host(host) is ok


@pytest.mark.parametrize(("value", "normal"), [
    ("https://Portal.Example.gov.vn", "https://portal.example.gov.vn"),
    ("https://portal.example.gov.vn:443", "https://portal.example.gov.vn"),
    ("http://127.0.0.1:8765/", "http://127.0.0.1:8765"),
    ("https://portal.example.gov.vn/path", ""), ("ftp://x", ""), ("null", ""), ("", ""),
    ("https://user@portal.example.gov.vn", ""), ("https://portal.example.gov.vn:99999", ""),
])
def test_normalize_origin(value: str, normal: str) -> None:
    assert normalize_origin(value) == normal


def test_token_bucket_refills_at_its_rate() -> None:
    now = [0.0]
    buckets = TokenBuckets(rate=2.0, burst=3, clock=lambda: now[0])
    assert [buckets.take("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert buckets.take("a") == pytest.approx(0.5)
    assert buckets.take("b") == 0.0  # per client
    now[0] = 0.5
    assert buckets.take("a") == 0.0
    assert buckets.take("a") > 0


def test_token_bucket_forgets_idle_clients_beyond_its_size() -> None:
    buckets = TokenBuckets(rate=1.0, burst=1, max_keys=2, clock=lambda: 0.0)
    for key in ("a", "b", "c"):
        buckets.take(key)
    assert buckets.take("a") == 0.0  # "a" was evicted and starts with a full bucket
    assert buckets.take("c") > 0


def test_pairing_store_roundtrip(tmp_path: Path) -> None:
    store = PairingStore(tmp_path)
    token = store.issue("https://Portal.example.gov.vn:443/")
    assert token.startswith("cdp_")
    assert len(token) > 40
    assert store.verify("https://portal.example.gov.vn", token)
    assert not store.verify("https://portal.example.gov.vn", token + "x")
    assert not store.verify("https://other.example", token)
    assert stat.S_IMODE(os.stat(store.path).st_mode) == 0o600
    # another process (the CLI) revokes: this store notices without being told
    assert PairingStore(tmp_path).revoke("https://portal.example.gov.vn")
    assert not store.verify("https://portal.example.gov.vn", token)
    assert not store.revoke("https://portal.example.gov.vn")


def test_pairing_rejects_non_origins(tmp_path: Path) -> None:
    with pytest.raises(InvalidRequestError):
        PairingStore(tmp_path).issue("portal.example.gov.vn")


def test_corrupt_pairing_file_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "pairings.json").write_text("{not json")
    with pytest.raises(ConfigError):
        PairingStore(tmp_path).verify("https://x.example", "cdp_x")


def test_web_config_section(tmp_path: Path) -> None:
    cfg = tmp_path / "a.toml"
    cfg.write_text('[web]\nlisten = "127.0.0.1:9999"\nallowed_origins = ["https://portal.example.gov.vn"]\n')
    config = load_config(cfg)
    assert config.web.listen == "127.0.0.1:9999"
    assert config.web.allowed_origins == ["https://portal.example.gov.vn"]
    assert load_config(None).web.listen == "127.0.0.1:8765"  # on by default, loopback
    for bad in ('listen = "0.0.0.0:8765"', 'allowed_origins = ["*"]',
                'allowed_origins = ["https://portal.example.gov.vn/"]', 'rate_per_second = 0', 'cors = "*"'):
        cfg.write_text(f"[web]\n{bad}\n")
        with pytest.raises(ConfigError):
            load_config(cfg)


def test_attestation_key_is_made_once_and_reused(tmp_path: Path) -> None:
    from agent.api.attestation import Attestor, verify_attestation
    from centre.agent.v1 import idcard_pb2

    first = Attestor(tmp_path / "state")
    response = idcard_pb2.ReadCardResponse(device_id="idcard-1")
    response.personal.full_name = "X"
    a = first.attest(response, "https://portal.example.gov.vn", b"n", now=1.0)
    b = Attestor(tmp_path / "state").attest(response, "https://portal.example.gov.vn", b"n", now=1.0)
    assert a.public_key == b.public_key
    assert verify_attestation(b)["agent"]["id"] == first.agent_id
    assert stat.S_IMODE(os.stat(tmp_path / "state" / "attestation-key.pem").st_mode) == 0o600


def test_unwritable_state_dir_fails_only_the_attested_read(tmp_path: Path) -> None:
    from agent.api.attestation import Attestor
    from centre.agent.v1 import idcard_pb2

    blocker = tmp_path / "file"
    blocker.write_text("")
    attestor = Attestor(blocker / "state")  # constructing never fails
    with pytest.raises(ConfigError):
        attestor.attest(idcard_pb2.ReadCardResponse(), "https://portal.example.gov.vn", b"n")


async def test_connect_endpoints_apply_the_native_per_method_size_limits() -> None:
    from connectrpc.code import Code
    from connectrpc.errors import ConnectError
    from connectrpc.request import Headers, RequestContext

    from agent.api.call import CallInfo
    from agent.api.connect_server import endpoints_for
    from agent.metrics import AgentMetrics
    from centre.agent.v1 import common_pb2, devices_pb2, printer_pb2

    class Cores:
        descriptor = devices_pb2.DESCRIPTOR.services_by_name["DeviceService"]

        async def ListDevices(self, request: object, call: CallInfo) -> devices_pb2.ListDevicesResponse:
            assert call.origin == "https://portal.example.gov.vn"
            assert call.client_id == "web:https://portal.example.gov.vn#tab-1"
            return devices_pb2.ListDevicesResponse()

    class Printers:
        descriptor = printer_pb2.DESCRIPTOR.services_by_name["PrinterService"]

        async def Print(self, request: printer_pb2.PrintRequest, call: CallInfo) -> printer_pb2.PrintJob:
            return printer_pb2.PrintJob(job_id="j1")

    table = endpoints_for([Cores(), Printers()], AgentMetrics(), max_request_bytes=8 << 20)
    assert "/centre.agent.v1.DeviceService/WatchEvents" not in table  # not implemented by this core
    headers = Headers({"origin": "https://portal.example.gov.vn", "centre-client-id": "tab-1"})

    def ctx(path: str) -> RequestContext[object, object]:
        return RequestContext(method=table[path].method, http_method="POST", request_headers=headers)

    listing = "/centre.agent.v1.DeviceService/ListDevices"
    small = devices_pb2.ListDevicesRequest(families=[common_pb2.DEVICE_FAMILY_IDCARD] * 10)
    assert await table[listing].function(small, ctx(listing)) == devices_pb2.ListDevicesResponse()  # type: ignore[misc]
    # over 1 MiB: no listing request is that big
    big = devices_pb2.ListDevicesRequest(families=[common_pb2.DEVICE_FAMILY_IDCARD] * 1_100_000)
    with pytest.raises(ConnectError) as err:
        await table[listing].function(big, ctx(listing))  # type: ignore[misc]
    assert err.value.code == Code.INVALID_ARGUMENT
    printing = "/centre.agent.v1.PrinterService/Print"
    job = printer_pb2.PrintRequest(document=b"%PDF" + b"x" * (2 << 20))  # print jobs may be large
    assert (await table[printing].function(job, ctx(printing))).job_id == "j1"  # type: ignore[misc]


def test_pairing_file_written_by_root_stays_readable_by_the_agent_user(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    if os.geteuid() == 0:
        os.chown(state, 4242, 4242)  # the service user owns the state directory
    PairingStore(state).issue("https://portal.example.gov.vn")
    st = (state / "pairings.json").stat()
    assert (st.st_uid, st.st_gid) == (state.stat().st_uid, state.stat().st_gid)
    assert stat.S_IMODE(st.st_mode) == 0o600


async def test_unreadable_pairing_file_refuses_every_call_with_a_reason(tmp_path: Path) -> None:
    from typing import Any

    from agent.api.web_security import GuardedApp, WebPolicy

    (tmp_path / "pairings.json").write_text("{broken")
    reached: list[str] = []

    async def inner(scope: Any, receive: Any, send: Any) -> None:
        reached.append(scope["path"])

    policy = WebPolicy(allowed_origins=frozenset({"https://portal.example.gov.vn"}), pairings=PairingStore(tmp_path),
                       buckets=TokenBuckets(10, 10), max_request_bytes=1024, max_streams_per_client=1)
    sent: list[dict[str, Any]] = []

    async def send(message: Any) -> None:
        sent.append(message)

    async def receive() -> Any:
        return {"type": "http.request", "body": b"{}"}

    scope = {"type": "http", "method": "POST", "path": "/centre.agent.v1.AgentService/GetVersion",
             "headers": [(b"host", b"127.0.0.1:8765"), (b"origin", b"https://portal.example.gov.vn"),
                         (b"authorization", b"Bearer cdp_x"), (b"content-type", b"application/json")]}
    await GuardedApp(inner, policy)(scope, receive, send)
    assert reached == []
    assert sent[0]["status"] == 503
    assert (b"centre-error-reason", b"PAIRING_STORE_UNREADABLE") in sent[0]["headers"]


async def test_demo_is_not_served_unless_enabled(tmp_path: Path) -> None:
    from typing import Any

    from agent.api.connect_server import ConnectServer
    from agent.config import WebSection
    from agent.metrics import AgentMetrics

    async def get(app: Any, path: str) -> int:
        sent: list[Any] = []

        async def send(message: Any) -> None:
            sent.append(message)

        async def receive() -> Any:
            return {"type": "http.request", "body": b""}

        await app({"type": "http", "method": "GET", "path": path, "headers": [(b"host", b"localhost:8765")]},
                  receive, send)
        return int(sent[0]["status"])

    web = WebSection(listen="127.0.0.1:0")
    off = ConnectServer([], AgentMetrics(), web, str(tmp_path))
    assert await get(off.app, "/demo/index.html") == 403  # no demo: an ordinary refused request
    on = ConnectServer([], AgentMetrics(), web, str(tmp_path), demo=True)
    assert await get(on.app, "/demo/index.html") == 200
    assert await get(on.app, "/demo") == 308
    on.listen()  # the listener's own origins become allowed (pairing still required)
    try:
        port = on.address.rsplit(":", 1)[1]
        assert f"http://127.0.0.1:{port}" in on.policy.allowed_origins
        assert f"http://localhost:{port}" in on.policy.allowed_origins
        assert not off.policy.allowed_origins
    finally:
        await on.stop(1)
