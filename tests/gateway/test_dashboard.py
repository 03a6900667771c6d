"""The dashboard rendered by headless Chromium against a real gateway process."""

from __future__ import annotations

import shutil
import subprocess
import tempfile

from centre.gateway.v1 import reporting_pb2
from tests.gateway.client import AGENT_MD, GatewayClient, heartbeat, identity, printer, report, status_update
from tests.gateway.gateway_process import GatewayProcess

CHROMIUM = "/usr/bin/chromium"


def dump_dom(url: str) -> str:
    profile = tempfile.mkdtemp(prefix="centre-chromium-")
    try:
        return subprocess.run(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={profile}", "--virtual-time-budget=5000", "--dump-dom", url],
            capture_output=True, text=True, check=True, timeout=90).stdout
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def test_dashboard_shows_centre_with_problem_and_drills_down(gateway: GatewayProcess) -> None:
    client = GatewayClient(gateway.target)
    healthy = identity("hn-hk-002-pc01", "HN-HK-002")
    broken = identity("hn-bd-001-pc03", "HN-BD-001")
    for agent in (healthy, broken):
        client.reporting.Heartbeat(heartbeat(agent), metadata=AGENT_MD, timeout=10)
    client.reporting.ReportDevices(report(status_update(1, printer("ok-printer")), agent=healthy),
                                   metadata=AGENT_MD, timeout=10)
    client.reporting.ReportDevices(report(status_update(1, printer("jammed-printer", reporting_pb2.DEVICE_STATE_ERROR,
                                                                   last_error="MEDIA_JAM")), agent=broken),
                                   metadata=AGENT_MD, timeout=10)
    client.close()

    home = dump_dom(gateway.http + "/")
    assert 'data-ready="1"' in home
    assert 'data-centre="HN-BD-001" class="error"' in home  # the centre with a problem stands out
    assert 'data-centre="HN-HK-002" class=""' in home
    problems = home.split('id="problems"', 1)[1]
    assert "device-error" in problems
    assert "hn-bd-001-pc03" in problems
    assert "HN-HK-002" not in problems

    centre = dump_dom(gateway.http + "/#centre=HN-BD-001")
    assert 'data-agent="hn-bd-001-pc03"' in centre
    assert "hn-hk-002-pc01" not in centre.split('id="problems"')[0]

    pc = dump_dom(gateway.http + "/#agent=hn-bd-001-pc03")
    assert 'data-device="jammed-printer"' in pc
    assert "MEDIA_JAM" in pc
    assert "Black Toner 80%" in pc

    found = dump_dom(gateway.http + "/#q=jammed")
    assert "jammed-printer" in found.split('id="problems"')[0]
