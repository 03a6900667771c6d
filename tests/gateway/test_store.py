"""One suite, run against both storage backends."""

from __future__ import annotations

from gateway.model import (
    AgentHealthInfo,
    AgentRef,
    AgentReport,
    Beat,
    ConditionInfo,
    DeviceReport,
    ProblemSeverity,
    SupplyInfo,
    Update,
)
from gateway.store import FleetStore

AGENT = AgentRef("hn-bd-001-pc01", "HN", "HN-BD-001")


def status(device_id: str, state: str, **kw: object) -> DeviceReport:
    return DeviceReport(device_id=device_id, kind="printer", state=state, **kw)  # type: ignore[arg-type]


def report(epoch: int, *updates: Update, now: int = 1_000) -> AgentReport:
    return AgentReport(AGENT, epoch, tuple(updates), now, AgentHealthInfo(version="0.1.0", host="pc01"))


async def test_migrations_are_idempotent(store: FleetStore) -> None:
    assert await store.migrate() == 1
    assert await store.migrate() == 1
    assert await store.schema_version() == 1


async def test_apply_diffs_in_order_and_dedupe_replays(store: FleetStore) -> None:
    first = report(7, Update(1, 10, status("p1", "ready")), Update(2, 20, status("p1", "error", last_error="JAM")))
    [res] = await store.apply_reports([first])
    assert (res.acked_seq, res.applied, res.replayed) == (2, 2, 0)
    # replay of the same batch plus one new entry: only the new one applies
    again = report(7, Update(1, 10, status("p1", "ready")), Update(2, 20, status("p1", "error")),
                   Update(3, 30, status("p1", "ready")))
    [res] = await store.apply_reports([again])
    assert (res.acked_seq, res.applied, res.replayed) == (3, 1, 2)
    assert [t.state for t in await store.transitions(AGENT.agent_id, "p1")] == ["ready", "error", "ready"]
    assert await store.cursor(AGENT.agent_id) == (7, 3)


async def test_new_epoch_resets_cursor(store: FleetStore) -> None:
    await store.apply_reports([report(1, Update(5, 1, status("p1", "ready")))])
    [res] = await store.apply_reports([report(2, Update(1, 2, status("p1", "error")))])
    assert res.acked_seq == 1
    assert res.applied == 1
    assert await store.cursor(AGENT.agent_id) == (2, 1)


async def test_snapshot_replaces_device_set(store: FleetStore) -> None:
    await store.apply_reports([report(1, Update(1, 1, status("a", "ready")), Update(2, 2, status("b", "ready")))])
    snap = Update(3, 3, snapshot=(status("b", "ready"), status("c", "busy")))
    await store.apply_reports([report(1, snap)])
    devices = {d.report.device_id: d for d in await store.devices()}
    assert set(devices) == {"b", "c"}
    assert devices["b"].state_since_ms == 2  # unchanged state keeps its age
    states = [(t.device_id, t.state) for t in await store.transitions(AGENT.agent_id)]
    assert ("a", "removed") in states
    assert ("c", "busy") in states
    await store.apply_reports([report(1, Update(4, 4, removed_id="b"))])
    assert [d.report.device_id for d in await store.devices()] == ["c"]


async def test_device_details_round_trip_and_problem_age(store: FleetStore) -> None:
    low = status("p1", "ready", conditions=(ConditionInfo("toner-low", ProblemSeverity.WARNING),),
                 supplies=(SupplyInfo("Black", "toner", 5, "black"),), counters={"pages_printed": 12})
    await store.apply_reports([report(1, Update(1, 100, low))])
    worse = status("p1", "error", last_error="MEDIA_JAM", supplies=(SupplyInfo("Black", "toner", 4, "black"),))
    await store.apply_reports([report(1, Update(2, 200, worse))])
    [row] = await store.devices()
    assert row.report.last_error == "MEDIA_JAM"
    assert row.report.supplies[0].level_percent == 4
    assert row.problem_since_ms == 100  # problem started with the first report and continues
    await store.apply_reports([report(1, Update(3, 300, status("p1", "ready")))])
    [row] = await store.devices()
    assert row.problem_since_ms == 0
    [again] = [r for r in await store.devices()]
    assert again.report.counters == {}
    await store.apply_reports([report(1, Update(4, 400, low))])
    [row] = await store.devices()
    assert row.report.counters == {"pages_printed": 12}
    assert row.report.conditions == (ConditionInfo("toner-low", ProblemSeverity.WARNING),)


async def test_beats_upsert_and_last_seen_only_moves_forward(store: FleetStore) -> None:
    health = AgentHealthInfo("0.2.0", 99, "pc01", "abc", 1_900_000_000)
    await store.save_beats([Beat(AGENT, health, 30, 5_000)])
    await store.save_beats([Beat(AGENT, health, 30, 4_000)])
    [agent] = await store.agents()
    assert agent.last_seen_ms == 5_000
    assert agent.interval_s == 30
    assert agent.health == health
    # a report after beats keeps the health and advances the cursor
    await store.apply_reports([report(3, Update(1, 1, status("x", "ready")), now=6_000)])
    [agent] = await store.agents()
    assert (agent.epoch, agent.acked_seq, agent.last_seen_ms) == (3, 1, 6_000)


async def test_batch_of_several_agents_in_one_transaction(store: FleetStore) -> None:
    reports = [AgentReport(AgentRef(f"a{i}", "HN", f"C{i % 3}"), 1, (Update(1, 1, status("d", "ready")),), 10)
               for i in range(50)]
    results = await store.apply_reports(reports)
    assert all(r.acked_seq == 1 for r in results)
    assert len(await store.agents()) == 50
    assert len(await store.devices()) == 50


async def test_prune_transitions_keeps_recent_history(store: FleetStore) -> None:
    await store.apply_reports([report(1, Update(1, 1, status("p1", "ready")), now=1_000)])
    await store.apply_reports([report(1, Update(2, 2, status("p1", "error")), now=5_000)])
    await store.prune_transitions(older_than_ms=3_000)
    assert [t.state for t in await store.transitions(AGENT.agent_id)] == ["error"]
    assert len(await store.devices()) == 1  # current state is never pruned
