"""Fleet views: problem order (severity, then age), centre summaries, search."""

from __future__ import annotations

from gateway.fleet import AgentView, FleetSnapshot
from gateway.model import (
    AgentHealthInfo,
    AgentRef,
    AgentRow,
    AgentStatus,
    DeviceReport,
    DeviceRow,
    SupplyInfo,
)

NOW = 100 * 24 * 3600 * 1000


def view(agent_id: str, centre: str, status: AgentStatus, *devices: DeviceRow, cert: int = 0,
         seen: int = NOW - 1000) -> AgentView:
    health = AgentHealthInfo(host=f"host-{agent_id}", certificate_not_after=cert)
    row = AgentRow(AgentRef(agent_id, "HN", centre), health, 60, 1, 1, seen, 0)
    return AgentView(row, status, devices)


def device(agent_id: str, device_id: str, state: str, since: int, toner: int = 80) -> DeviceRow:
    report = DeviceReport(device_id, "printer", name=f"Printer {device_id}", state=state,
                          supplies=(SupplyInfo("Black", "toner", toner),))
    problem_since = since if report.problems() else 0
    return DeviceRow(agent_id, report, since, problem_since, since)


def snapshot() -> FleetSnapshot:
    return FleetSnapshot(NOW, [
        view("a1", "C1", AgentStatus.ONLINE, device("a1", "old-jam", "error", NOW - 50_000),
             device("a1", "low", "ready", NOW - 90_000, toner=5)),
        view("a2", "C1", AgentStatus.OFFLINE, device("a2", "fine", "ready", NOW - 10), seen=NOW - 300_000),
        view("a3", "C2", AgentStatus.ONLINE, device("a3", "new-jam", "error", NOW - 1_000),
             cert=(NOW + 3 * 24 * 3600 * 1000) // 1000),
        view("a4", "C2", AgentStatus.MISSING, seen=NOW - 31 * 24 * 3600 * 1000),
    ])


def test_problems_sorted_by_severity_then_age() -> None:
    problems = snapshot().problems()
    assert [(p.code, p.severity.label, p.agent.agent_id, p.device_id) for p in problems] == [
        ("agent-missing", "error", "a4", ""),  # errors first, the oldest first
        ("agent-offline", "error", "a2", ""),
        ("device-error", "error", "a1", "old-jam"),
        ("device-error", "error", "a3", "new-jam"),
        ("supply-low", "warning", "a1", "low"),  # then warnings, oldest first
        ("certificate-expiring", "warning", "a3", ""),
    ]


def test_centre_summary_counts() -> None:
    centres = {c.centre: c for c in snapshot().centres()}
    assert (centres["C1"].agents["online"], centres["C1"].agents["offline"]) == (1, 1)
    assert (centres["C1"].devices_total, centres["C1"].devices_with_problems) == (3, 2)
    assert (centres["C2"].agents["missing"], centres["C2"].devices_with_problems) == (1, 1)
    assert snapshot().centres(province="XX") == []


def test_search_matches_centre_host_and_device() -> None:
    snap = snapshot()
    assert {h.agent.agent_id for h in snap.search("c2", 10)} == {"a3", "a4"}
    assert [h.device_id for h in snap.search("new-JAM", 10)] == ["new-jam"]
    assert [h.agent.agent_id for h in snap.search("host-a2", 10)] == ["a2"]
    assert len(snap.search("printer", 2)) == 2
