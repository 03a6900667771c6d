from __future__ import annotations

from pathlib import Path

import pytest

from agent.errors import ConfigError
from agent.uplink.outbox import KIND_REMOVED, KIND_SNAPSHOT, KIND_STATUS, Outbox, OutboxLimits


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def test_seq_strictly_increasing_and_pending_in_order(tmp_path: Path, clock: Clock) -> None:
    box = Outbox(tmp_path / "outbox.db", clock=clock)
    seqs = [box.append(KIND_STATUS, f"dev{i % 3}", f"p{i}".encode()) for i in range(10)]
    assert seqs == list(range(1, 11))
    entries = box.pending()
    assert [e.seq for e in entries] == seqs
    assert [e.payload for e in entries] == [f"p{i}".encode() for i in range(10)]
    assert len(box) == 10
    assert box.size_bytes == sum(len(e.payload) for e in entries)


def test_pending_respects_batch_limits(tmp_path: Path, clock: Clock) -> None:
    box = Outbox(tmp_path / "o.db", clock=clock)
    for i in range(20):
        box.append(KIND_STATUS, "d", bytes(100) + bytes([i]))
    assert len(box.pending(max_entries=5)) == 5
    assert len(box.pending(max_bytes=350)) == 3
    assert len(box.pending(max_bytes=1)) == 1  # never empty while entries wait


def test_ack_deletes_up_to_seq_and_replay_continues(tmp_path: Path, clock: Clock) -> None:
    box = Outbox(tmp_path / "o.db", clock=clock)
    for i in range(6):
        box.append(KIND_STATUS, "d", bytes([i]))
    assert box.ack(4) == 4
    assert [e.seq for e in box.pending()] == [5, 6]
    assert box.ack(4) == 0  # a replayed ack changes nothing
    assert box.ack(6) == 2
    assert box.pending() == []
    assert box.size_bytes == 0


def test_survives_restart_with_seq_epoch_and_entries(tmp_path: Path, clock: Clock) -> None:
    path = tmp_path / "state" / "outbox.db"
    box = Outbox(path, clock=clock)
    epoch = box.epoch
    for i in range(5):
        box.append(KIND_STATUS, "d", bytes([i]))
    box.ack(2)
    box.close()
    again = Outbox(path, clock=clock)
    assert again.epoch == epoch
    assert [e.seq for e in again.pending()] == [3, 4, 5]
    assert again.append(KIND_STATUS, "d", b"x") == 6
    assert again.size_bytes == 4
    assert (path.stat().st_mode & 0o777) == 0o600


def test_new_database_gets_new_epoch(tmp_path: Path, clock: Clock) -> None:
    assert Outbox(tmp_path / "a.db", clock=clock).epoch != Outbox(tmp_path / "b.db", clock=clock).epoch


def test_byte_bound_coalesces_superseded_states_first(tmp_path: Path, clock: Clock) -> None:
    drops: list[tuple[str, int]] = []
    box = Outbox(tmp_path / "o.db", OutboxLimits(max_bytes=2000), clock=clock,
                 on_drop=lambda reason, n: drops.append((reason, n)))
    # device a changes 15 times, device b once: 16 * 200 bytes > 2000
    box.append(KIND_STATUS, "b", b"B" * 200)
    for i in range(15):
        box.append(KIND_STATUS, "a", bytes([i]) * 200)
    assert box.size_bytes <= 2000
    left = box.pending()
    # b's only state survives; a's latest state survives; order is preserved
    assert left[0].device_id == "b"
    assert left[-1].payload == bytes([14]) * 200
    assert [e.seq for e in left] == sorted(e.seq for e in left)
    assert {reason for reason, _ in drops} == {"coalesced"}
    assert box.dropped()["coalesced"] == sum(n for _, n in drops)
    assert not box.snapshot_wanted()  # nothing the gateway needs was lost


def test_byte_bound_drops_oldest_when_nothing_to_coalesce(tmp_path: Path, clock: Clock) -> None:
    box = Outbox(tmp_path / "o.db", OutboxLimits(max_bytes=1024), clock=clock)
    for i in range(10):
        box.append(KIND_STATUS, f"dev{i}", bytes([i]) * 200)
    assert box.size_bytes <= 1024
    assert [e.device_id for e in box.pending()] == [f"dev{i}" for i in range(5, 10)]
    assert box.dropped() == {"bytes": 5}
    assert box.snapshot_wanted()
    box.append(KIND_SNAPSHOT, "", b"S" * 10)
    assert not box.snapshot_wanted()


def test_snapshot_supersedes_older_entries_under_pressure(tmp_path: Path, clock: Clock) -> None:
    box = Outbox(tmp_path / "o.db", OutboxLimits(max_bytes=1500), clock=clock)
    for i in range(5):
        box.append(KIND_STATUS, f"dev{i}", bytes(250))
    box.append(KIND_REMOVED, "dev0", bytes(10))
    box.append(KIND_SNAPSHOT, "", bytes(400))
    box.append(KIND_STATUS, "dev1", bytes(250))
    assert box.size_bytes <= 1500
    kinds = [e.kind for e in box.pending()]
    assert KIND_SNAPSHOT in kinds
    assert kinds[-1] == KIND_STATUS
    assert box.dropped().get("bytes", 0) == 0


def test_age_bound_drops_old_entries_and_wants_snapshot(tmp_path: Path, clock: Clock) -> None:
    box = Outbox(tmp_path / "o.db", OutboxLimits(max_age_seconds=3600), clock=clock)
    box.append(KIND_STATUS, "a", b"old")
    clock.now += 1800
    box.append(KIND_STATUS, "b", b"mid")
    clock.now += 2000
    assert [e.payload for e in box.pending()] == [b"mid"]
    assert box.dropped() == {"age": 1}
    assert box.snapshot_wanted()


def test_drop_persists_counts(tmp_path: Path, clock: Clock) -> None:
    path = tmp_path / "o.db"
    box = Outbox(path, clock=clock)
    seq = box.append(KIND_STATUS, "a", b"bad")
    box.drop([seq], "rejected")
    box.close()
    assert Outbox(path, clock=clock).dropped() == {"rejected": 1}


def test_bad_input(tmp_path: Path, clock: Clock) -> None:
    box = Outbox(tmp_path / "o.db", OutboxLimits(max_bytes=1024), clock=clock)
    with pytest.raises(ConfigError):
        box.append("bogus", "a", b"")
    with pytest.raises(ConfigError):
        box.append(KIND_STATUS, "a", bytes(2000))
    with pytest.raises(ConfigError):
        OutboxLimits(max_bytes=10)
