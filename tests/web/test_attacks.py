"""Attacks on the browser listener, over real HTTP against a running agent."""

from __future__ import annotations

import json
import stat
import struct
import threading
from collections.abc import Iterator

import httpx
import pytest

from tests.web.conftest import PORTAL, RATE_PORTAL, REVOKE_PORTAL, STREAM_PORTAL, RunningAgent

VERSION = "/centre.agent.v1.AgentService/GetVersion"
WATCH = "/centre.agent.v1.DeviceService/WatchEvents"


def call(agent: RunningAgent, *, origin: str | None = PORTAL, token: str | None = None, path: str = VERSION,
         host: str | None = None, body: bytes = b"{}", content_type: str = "application/json",
         extra: dict[str, str] | None = None) -> httpx.Response:
    headers = {"Content-Type": content_type}
    if origin is not None:
        headers["Origin"] = origin
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    if host is not None:
        headers["Host"] = host
    headers.update(extra or {})
    return httpx.post(agent.url + path, content=body, headers=headers, timeout=30)


def test_paired_origin_is_served(agent: RunningAgent, portal_token: str) -> None:
    r = call(agent, token=portal_token)
    assert r.status_code == 200
    assert r.json()["apiVersion"] == "centre.agent.v1"
    assert r.headers["access-control-allow-origin"] == PORTAL
    assert "Origin" in r.headers["vary"]


@pytest.mark.parametrize("host", ["evil.example", "evil.example:8765", "127.0.0.1.evil.example",
                                  "localhost.evil.example", "10.0.0.5", "[fe80::1]:8765", "0.0.0.0", ""])
def test_dns_rebinding_host_refused(agent: RunningAgent, portal_token: str, host: str) -> None:
    r = call(agent, token=portal_token, host=host)
    assert r.status_code == 403
    assert "access-control-allow-origin" not in r.headers
    assert "apiVersion" not in r.text


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1", "[::1]", "127.1.2.3"])
def test_loopback_host_names_accepted(agent: RunningAgent, portal_token: str, host: str) -> None:
    port = agent.web.rsplit(":", 1)[1]
    assert call(agent, token=portal_token, host=f"{host}:{port}").status_code == 200


@pytest.mark.parametrize("origin", ["https://evil.example", "null", "http://portal.example.gov.vn",
                                    "https://portal.example.gov.vn.evil.example", "https://portal.example.gov.vn:444"])
def test_unlisted_origin_refused_even_with_a_valid_token(agent: RunningAgent, portal_token: str, origin: str) -> None:
    r = call(agent, origin=origin, token=portal_token)
    assert r.status_code == 403
    assert "access-control-allow-origin" not in r.headers
    assert "apiVersion" not in r.text


def test_missing_origin_refused(agent: RunningAgent, portal_token: str) -> None:
    r = call(agent, origin=None, token=portal_token)
    assert r.status_code == 403


def preflight(agent: RunningAgent, origin: str, headers: str = "content-type, authorization",
              private: bool = True) -> httpx.Response:
    h = {"Origin": origin, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": headers}
    if private:
        h["Access-Control-Request-Private-Network"] = "true"
        h["Access-Control-Request-Local-Network"] = "true"
    return httpx.options(agent.url + VERSION, headers=h)


def test_preflight_for_listed_origin_allows_private_network(agent: RunningAgent) -> None:
    r = preflight(agent, PORTAL)
    assert r.status_code == 204
    assert r.headers["access-control-allow-origin"] == PORTAL
    assert r.headers["access-control-allow-private-network"] == "true"
    assert r.headers["access-control-allow-local-network"] == "true"
    assert "authorization" in r.headers["access-control-allow-headers"]
    assert "*" not in r.headers["access-control-allow-origin"]


def test_preflight_without_private_network_request_gets_no_pna_header(agent: RunningAgent) -> None:
    r = preflight(agent, PORTAL, private=False)
    assert r.status_code == 204
    assert "access-control-allow-private-network" not in r.headers


def test_preflight_from_unlisted_origin_refused(agent: RunningAgent) -> None:
    r = preflight(agent, "https://evil.example")
    assert r.status_code == 403
    assert not any(k.startswith("access-control-") for k in r.headers)


def test_preflight_for_unexpected_header_refused(agent: RunningAgent) -> None:
    r = preflight(agent, PORTAL, headers="content-type, x-forwarded-for")
    assert r.status_code == 403
    assert "access-control-allow-origin" not in r.headers


def test_missing_token_refused(agent: RunningAgent) -> None:
    r = call(agent)
    assert r.status_code == 401
    assert r.json()["code"] == "unauthenticated"
    assert r.headers["centre-error-reason"] == "PAIRING_REQUIRED"
    # readable by the portal (CORS headers present) so the SDK can say "not paired"
    assert r.headers["access-control-allow-origin"] == PORTAL


@pytest.mark.parametrize("token", ["cdp_", "cdp_wrong", "x" * 5000])
def test_wrong_token_refused(agent: RunningAgent, portal_token: str, token: str) -> None:
    r = call(agent, token=token)
    assert r.status_code == 401
    assert r.json()["code"] == "unauthenticated"


def test_token_of_another_origin_refused(agent: RunningAgent, portal_token: str) -> None:
    r = call(agent, origin=RATE_PORTAL, token=portal_token)
    assert r.status_code == 401
    assert r.headers["centre-error-reason"] == "PAIRING_INVALID"


def test_basic_scheme_refused(agent: RunningAgent, portal_token: str) -> None:
    r = call(agent, extra={"Authorization": f"Basic {portal_token}"})
    assert r.status_code == 401


def test_revocation_takes_effect_without_restart(agent: RunningAgent) -> None:
    token = agent.pair(REVOKE_PORTAL)
    assert call(agent, origin=REVOKE_PORTAL, token=token).status_code == 200
    agent.revoke(REVOKE_PORTAL)
    r = call(agent, origin=REVOKE_PORTAL, token=token)
    assert r.status_code == 401
    assert r.headers["centre-error-reason"] == "PAIRING_INVALID"
    # re-pairing issues a different token; the old one stays dead
    fresh = agent.pair(REVOKE_PORTAL)
    assert fresh != token
    assert call(agent, origin=REVOKE_PORTAL, token=token).status_code == 401
    assert call(agent, origin=REVOKE_PORTAL, token=fresh).status_code == 200


def test_pairing_file_holds_only_hashes(agent: RunningAgent, portal_token: str) -> None:
    path = agent.state_dir / "pairings.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    text = path.read_text()
    assert portal_token not in text
    assert portal_token[4:20] not in text
    assert PORTAL in json.loads(text)["pairings"]


def test_oversized_body_refused_by_length(agent: RunningAgent, portal_token: str) -> None:
    r = call(agent, token=portal_token, body=b"{" + b" " * 1_100_000 + b"}")
    assert r.status_code == 429
    assert r.json()["code"] == "resource_exhausted"
    assert r.headers["centre-error-reason"] == "REQUEST_TOO_LARGE"


def test_oversized_chunked_body_refused(agent: RunningAgent, portal_token: str) -> None:
    def chunks() -> Iterator[bytes]:
        yield b"{"
        for _ in range(300):
            yield b" " * 4096
        yield b"}"

    r = httpx.post(agent.url + VERSION, content=chunks(), timeout=30,
                   headers={"Origin": PORTAL, "Authorization": f"Bearer {portal_token}",
                            "Content-Type": "application/json"})
    assert r.status_code != 200
    assert "apiVersion" not in r.text


def test_rate_limit_per_client(agent: RunningAgent) -> None:
    token = agent.pair(RATE_PORTAL)
    limited = None
    with httpx.Client(timeout=30) as client:
        for _ in range(300):
            r = client.post(agent.url + VERSION, content=b"{}", headers={
                "Origin": RATE_PORTAL, "Authorization": f"Bearer {token}", "Content-Type": "application/json"})
            if r.status_code != 200:
                limited = r
                break
    assert limited is not None
    assert limited.status_code == 429
    assert limited.json()["code"] == "resource_exhausted"
    assert int(limited.headers["retry-after"]) >= 1
    # another client's budget is untouched
    assert call(agent, token=agent.pair(STREAM_PORTAL), origin=STREAM_PORTAL).status_code == 200


def envelope(data: bytes, flags: int = 0) -> bytes:
    return struct.pack(">BI", flags, len(data)) + data


def test_concurrent_streams_capped(agent: RunningAgent) -> None:
    token = agent.pair(STREAM_PORTAL)
    headers = {"Origin": STREAM_PORTAL, "Authorization": f"Bearer {token}",
               "Content-Type": "application/connect+json"}
    body = envelope(b'{"initialSnapshot": true}')
    opened: list[httpx.Response] = []
    readers: list[Iterator[bytes]] = []  # kept referenced: dropping one would close its stream
    with httpx.Client(timeout=30) as client:
        try:
            for _ in range(2):
                r = client.send(client.build_request("POST", agent.url + WATCH, content=body, headers=headers),
                                stream=True)
                opened.append(r)
                assert r.status_code == 200
                readers.append(r.iter_raw())
                next(readers[-1])  # first event arrived: the stream is open
            third = client.post(agent.url + WATCH, content=body, headers=headers)
            assert third.status_code == 200
            flags, length = struct.unpack(">BI", third.content[:5])
            assert flags == 2  # end-of-stream message carrying the error
            assert json.loads(third.content[5:5 + length])["error"]["code"] == "resource_exhausted"
            assert third.headers["centre-error-reason"] == "TOO_MANY_STREAMS"
        finally:
            for r in opened:
                r.close()


def test_grpc_web_binary_unary(agent: RunningAgent, portal_token: str) -> None:
    from centre.agent.v1 import agent_pb2

    r = call(agent, token=portal_token, body=envelope(agent_pb2.GetVersionRequest().SerializeToString()),
             content_type="application/grpc-web+proto", extra={"X-Grpc-Web": "1"})
    assert r.status_code == 200
    data = r.content
    flags, length = struct.unpack(">BI", data[:5])
    assert flags == 0
    assert agent_pb2.Version.FromString(data[5:5 + length]).api_version == "centre.agent.v1"
    rest = data[5 + length:]
    assert rest[0] == 0x80  # trailers frame
    assert b"grpc-status:0" in rest[5:].replace(b" ", b"")


def test_grpc_web_refusal_is_a_grpc_status(agent: RunningAgent) -> None:
    r = call(agent, body=envelope(b""), content_type="application/grpc-web+proto")
    assert r.status_code == 200
    assert r.headers["grpc-status"] == "16"


def test_connect_binary_proto_unary(agent: RunningAgent, portal_token: str) -> None:
    from centre.agent.v1 import devices_pb2

    r = call(agent, token=portal_token, path="/centre.agent.v1.DeviceService/ListDevices",
             body=devices_pb2.ListDevicesRequest().SerializeToString(), content_type="application/proto")
    assert r.status_code == 200
    families = {d.family for d in devices_pb2.ListDevicesResponse.FromString(r.content).devices}
    assert len(families) >= 4


def test_unknown_rpc_is_not_found(agent: RunningAgent, portal_token: str) -> None:
    r = call(agent, token=portal_token, path="/centre.agent.v1.AgentService/Shutdown")
    assert r.status_code == 404


def test_demo_static_files_do_not_escape_their_directory(agent: RunningAgent) -> None:
    for path in ("/demo/%2e%2e/%2e%2e/pyproject.toml", "/demo/..%2f..%2fpyproject.toml"):
        r = httpx.get(agent.url + path)
        assert r.status_code == 404
        assert "[project]" not in r.text


def test_probe_answers_without_revealing_anything(agent: RunningAgent) -> None:
    r = httpx.get(agent.url + "/centre/probe", headers={"Origin": "https://evil.example"})
    assert r.status_code == 204
    assert r.content == b""
    assert "access-control-allow-origin" not in r.headers


def test_the_agent_survives_garbage(agent: RunningAgent, portal_token: str) -> None:
    bodies = [b"\xff\xfe", b"[1,2", envelope(b"\x0a\xff"), b"\x00" * 3]
    threads = [threading.Thread(target=call, args=(agent,), kwargs={"token": portal_token, "body": b,
                                                                    "content_type": ct})
               for b in bodies for ct in ("application/json", "application/proto", "application/grpc-web+proto")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert call(agent, token=portal_token).status_code == 200
    assert agent.process.poll() is None


def test_grpc_web_server_stream(agent: RunningAgent, portal_token: str) -> None:
    from centre.agent.v1 import devices_pb2

    request = devices_pb2.WatchEventsRequest(initial_snapshot=True).SerializeToString()
    headers = {"Origin": PORTAL, "Authorization": f"Bearer {portal_token}",
               "Content-Type": "application/grpc-web+proto", "X-Grpc-Web": "1"}
    events = []
    with httpx.stream("POST", agent.url + WATCH, content=envelope(request), headers=headers, timeout=30) as r:
        assert r.status_code == 200
        buffer = b""
        for chunk in r.iter_raw():
            buffer += chunk
            while len(buffer) >= 5:
                flags, length = struct.unpack(">BI", buffer[:5])
                if len(buffer) < 5 + length:
                    break
                assert flags == 0
                events.append(devices_pb2.Event.FromString(buffer[5:5 + length]))
                buffer = buffer[5 + length:]
            if len(events) >= 5:
                break
    assert {e.kind for e in events} == {devices_pb2.EVENT_KIND_DEVICE_ADDED}
    assert any(e.device_id.startswith("idcard-") and e.device.name for e in events)


def test_refusal_flood_does_not_flood_the_audit_log(agent: RunningAgent) -> None:
    origin = "https://flood.example"
    with httpx.Client(timeout=30) as client:
        for _ in range(200):
            client.post(agent.url + VERSION, content=b"{}", headers={"Origin": origin})
    lines = [line for line in agent.log_text().splitlines() if "flood.example" in line]
    assert 1 <= len(lines) <= 60



def test_unary_grpc_web_calls_do_not_count_as_streams(agent: RunningAgent) -> None:
    from centre.agent.v1 import agent_pb2

    token = agent.pair(STREAM_PORTAL)
    headers = {"Origin": STREAM_PORTAL, "Authorization": f"Bearer {token}"}
    body = envelope(b'{"initialSnapshot": true}')
    with httpx.Client(timeout=30) as client:
        opened = [client.send(client.build_request("POST", agent.url + WATCH, content=body, headers={
            **headers, "Content-Type": "application/connect+json"}), stream=True) for _ in range(2)]
        readers = [r.iter_raw() for r in opened]
        try:
            for reader in readers:
                next(reader)
            # the stream budget is spent, yet unary calls (gRPC-Web framed too) still go through
            r = client.post(agent.url + VERSION, content=envelope(agent_pb2.GetVersionRequest().SerializeToString()),
                            headers={**headers, "Content-Type": "application/grpc-web+proto"})
            assert r.status_code == 200
            assert "grpc-status" not in r.headers or r.headers["grpc-status"] == "0"
        finally:
            for resp in opened:
                resp.close()
