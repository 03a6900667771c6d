"""The demo portal in real headless Chromium against a running agent (node + playwright-core)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.simulator.emrtd.profiles import SAMPLE_DG13
from agent.simulator.idcard import SIMULATED_ID
from tests.web.conftest import LISTED_SITE_PORT, ROOT, RunningAgent, free_port

JS = ROOT / "clients" / "js"
DEMO = JS / "demo"


def browse(scenario: str, url: str, screenshot: Path | None = None, public_port: int = 0,
           grant: str = "") -> dict[str, Any]:
    """Run the node driver; ``public_port`` makes Chromium treat 127.0.0.1:PORT as a public site
    (so Local Network Access applies to its calls to the agent), ``grant`` grants permissions."""
    node = shutil.which("node")
    assert node is not None, "node is required (scripts/apt/web.txt)"
    assert (JS / "node_modules" / "playwright-core").is_dir(), "run clients/js/install.sh first"
    cmd = [node, str(JS / "tests" / "browser.mjs"), scenario, url, *([str(screenshot)] if screenshot else [])]
    env = dict(os.environ)
    if public_port:
        env["CHROMIUM_EXTRA_FLAGS"] = f"--ip-address-space-overrides=127.0.0.1:{public_port}=public"
    if grant:
        env["CHROMIUM_GRANT"] = grant
    out = subprocess.run(cmd, cwd=JS, capture_output=True, text=True, timeout=180, env=env)
    assert out.returncode == 0, out.stderr
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    assert "error" not in result, result
    return result


@pytest.fixture(scope="module")
def demo_token(agent: RunningAgent) -> str:
    # the demo is served by the agent itself, so its origin is the listener's own
    return agent.pair(agent.url)


def static_site(port: int) -> Iterator[str]:
    proc = subprocess.Popen([sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1",
                             "--directory", str(DEMO)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        import httpx

        for _ in range(100):
            try:
                httpx.get(f"http://127.0.0.1:{port}/index.html", timeout=1)
                break
            except httpx.HTTPError:
                import time

                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture(scope="module")
def other_site() -> Iterator[str]:
    """The demo from a static server on another port: an origin the agent does not list."""
    yield from static_site(free_port())


@pytest.fixture(scope="module")
def listed_site(agent: RunningAgent) -> Iterator[str]:
    """The demo from a static server whose origin the agent lists (a portal on another origin)."""
    yield from static_site(LISTED_SITE_PORT)


def test_listed_cross_origin_portal_passes_cors(agent: RunningAgent, listed_site: str) -> None:
    token = agent.pair(listed_site)
    result = browse("demo", f"{listed_site}/index.html?agent={agent.url}#token={token}")
    assert result["state"] == "connected", result
    assert result["cardName"] == SAMPLE_DG13[2]
    assert result["print"] == "completed"
    assert result["console"] == []


def test_local_network_access_denied_is_told_apart(agent: RunningAgent, listed_site: str) -> None:
    # the portal is listed and paired; only the browser's Local Network Access check blocks it
    token = agent.pair(listed_site)
    result = browse("status", f"{listed_site}/index.html?agent={agent.url}#token={token}",
                    public_port=LISTED_SITE_PORT)
    assert result["state"] == "blocked"
    assert result["reason"] == "local-network-access-denied", result


def test_local_network_access_granted_public_portal_connects(agent: RunningAgent, listed_site: str) -> None:
    # a public portal with the permission granted: the agent's preflight answer satisfies Chromium
    token = agent.pair(listed_site)
    result = browse("status", f"{listed_site}/index.html?agent={agent.url}#token={token}",
                    public_port=LISTED_SITE_PORT, grant="local-network-access")
    assert result["state"] == "connected", result


def test_demo_reads_the_simulated_card(agent: RunningAgent, demo_token: str) -> None:
    shot = Path("/tmp/centre-demo.png")
    result = browse("demo", f"{agent.url}/demo/#token={demo_token}", shot)
    assert result["state"] == "connected", result
    assert result["cardName"] == SAMPLE_DG13[2], result
    assert SIMULATED_ID in result["cardFields"]
    assert "passive: valid" in result["verdicts"]  # the simulator's test CSCA is trusted in --simulate
    assert "data: valid" in result["verdicts"]  # DG13 decoded whole
    assert "Signed by the agent" in result["attestation"]
    assert "self-signed: this agent is not enrolled" in result["attestation"]  # --simulate never enrols
    assert result["faceLoaded"] is True
    assert "quality" in result["finger"]
    assert result["scanPages"] >= 1
    assert result["print"] == "completed"
    assert any("idcard" in d for d in result["devices"])
    assert result["events"] >= 5  # the snapshot arrived over the one event stream
    assert shot.stat().st_size > 10_000
    assert result["console"] == [], result["console"]  # no refused request, no script error


def test_demo_over_grpc_web(agent: RunningAgent, demo_token: str) -> None:
    result = browse("demo", f"{agent.url}/demo/?protocol=grpc-web#token={demo_token}")
    assert result["state"] == "connected", result
    assert "(grpc-web)" in result["text"]
    assert result["cardName"] == SAMPLE_DG13[2], result
    assert result["scanPages"] >= 1  # a server stream over gRPC-Web
    assert result["print"] == "completed"
    assert result["events"] >= 5
    assert result["console"] == []


def test_page_from_unlisted_origin_is_refused(agent: RunningAgent, other_site: str, demo_token: str) -> None:
    # even holding a valid token (of another origin), a page on an unlisted origin gets nothing
    result = browse("status", f"{other_site}/index.html?agent={agent.url}#token={demo_token}")
    assert result["state"] == "blocked"
    assert result["reason"] == "origin-not-allowed", result


def test_page_without_token_is_refused(agent: RunningAgent) -> None:
    result = browse("status", f"{agent.url}/demo/")
    assert result["state"] == "blocked"
    assert result["reason"] == "not-paired", result


def test_page_with_wrong_token_is_refused(agent: RunningAgent) -> None:
    result = browse("status", f"{agent.url}/demo/#token=cdp_not-the-token")
    assert result["state"] == "blocked"
    assert result["reason"] == "token-rejected", result


def test_agent_not_running_is_told_apart(other_site: str) -> None:
    closed = free_port()
    result = browse("status", f"{other_site}/index.html?agent=http://127.0.0.1:{closed}")
    assert result["state"] == "blocked"
    assert result["reason"] == "agent-not-running", result
