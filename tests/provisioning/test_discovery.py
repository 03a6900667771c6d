"""LAN discovery across two network namespaces: an agent advertises, the installer's PC lists it."""

from __future__ import annotations

import datetime as dt
import json
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from agent.provisioning.identity import IdentityInfo, IdentityStore, make_csr, new_key
from gateway.ca import CertificateAuthority
from tests.gateway.gateway_process import REPO
from tests.provisioning.netns import VethSegment
from tests.provisioning.pki import facts


@pytest.fixture(scope="module")
def segment() -> Iterator[VethSegment]:
    seg = VethSegment()
    seg.open()
    try:
        yield seg
    finally:
        seg.close()


def _enrolled_state(state: Path, tmp: Path) -> bytes:
    """An identity as enrolment leaves it (signed by a CA made here); returns the key PEM."""
    ca = CertificateAuthority.load_or_create(tmp / "ca")
    key = new_key()
    from cryptography import x509
    cert = ca.sign_agent(x509.load_der_x509_csr(make_csr(key, facts(3))), "hn-bd-001-003", "HN-BD-001", "HN",
                         dt.timedelta(days=30))
    IdentityStore(state).install(key, cert.public_bytes(serialization.Encoding.PEM), ca.cert_pem,
                                 IdentityInfo("hn-bd-001-003", "HN-BD-001", "HN", "gw:1", "gw:2", "active"))
    return (state / "identity" / "key.pem").read_bytes()


def _discover(segment: VethSegment, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*segment.exec_prefix(segment.b), sys.executable, "-m", "agent", "discover", *extra],
                          capture_output=True, text=True, cwd=REPO, env=dict(os.environ, PYTHONPATH=str(REPO)),
                          timeout=60)


def test_agent_in_one_namespace_is_listed_from_the_other(segment: VethSegment, tmp_path: Path) -> None:
    state = tmp_path / "state"
    key_pem = _enrolled_state(state, tmp_path)
    config = tmp_path / "agent.toml"
    config.write_text(f'[discovery]\nadvertise = true\ninterfaces = ["{segment.addr_a}"]\n')
    log = (tmp_path / "agent.log").open("w")
    proc = subprocess.Popen([*segment.exec_prefix(segment.a), sys.executable, "-m", "agent", "run", "--simulate",
                             "--config", str(config), "--socket", str(tmp_path / "agent.sock"),
                             "--state-dir", str(state), "--metrics", ""],
                            stdout=subprocess.PIPE, stderr=log, text=True, cwd=REPO,
                            env=dict(os.environ, PYTHONPATH=str(REPO)))
    log.close()
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 60
        line = ""
        while time.monotonic() < deadline and not line.startswith("centre-agent ready"):
            if select.select([proc.stdout], [], [], 0.5)[0]:
                line = proc.stdout.readline()
                if not line:
                    break
        assert "mdns=" in line, (tmp_path / "agent.log").read_text()[-2000:]
        found: list[dict[str, object]] = []
        for _ in range(5):
            result = _discover(segment, "--json", "--timeout", "3")
            assert result.returncode == 0, result.stderr
            found = json.loads(result.stdout)["agents"]
            if found:
                break
        assert [(a["enrolled"], a["centre"], a["agent_id"], a["version"]) for a in found] == [
            (True, "HN-BD-001", "hn-bd-001-003", "0.1.0")]
        assert found[0]["addresses"] == [segment.addr_a]
        # no secret in the advertisement (the key stays in the state dir)
        key_body = b"".join(key_pem.splitlines()[1:-1]).decode()
        assert key_body[:40] not in result.stdout
        table = _discover(segment, "--timeout", "3")
        assert "hn-bd-001-003" in table.stdout
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
    # withdrawn on shutdown: the segment is empty again
    gone = _discover(segment, "--json", "--timeout", "2")
    assert json.loads(gone.stdout)["agents"] == []


def test_discover_on_an_empty_segment(segment: VethSegment) -> None:
    result = _discover(segment, "--timeout", "1")
    assert result.returncode == 0
    assert "0 agent(s) found" in result.stdout
