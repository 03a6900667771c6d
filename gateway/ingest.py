"""Write path: reports batched into few transactions, heartbeats buffered in memory.

Reports are acked only after their transaction commits, so an ack always means
"durable". Heartbeats carry nothing that must survive a crash beyond last-seen, so
they stay in memory and are flushed every ``flush_interval`` seconds in one
statement batch: 20k agents beating every 60 s cost one write per 30 s, not 333/s.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from gateway.model import AgentReport, Beat, ReportResult
from gateway.store import FleetStore

log = logging.getLogger(__name__)

BatchListener = Callable[[int, float], None]  # (reports in batch, seconds spent)


class ReportWriter:
    """Group-commits reports: whatever queued while the previous batch was writing goes next."""

    def __init__(self, store: FleetStore, *, max_batch: int = 256,
                 on_batch: BatchListener | None = None) -> None:
        self.store = store
        self._max_batch = max_batch
        self._queue: asyncio.Queue[tuple[AgentReport, asyncio.Future[ReportResult]]] = asyncio.Queue()
        self._on_batch = on_batch
        #: agent_id -> (epoch, acked_seq) after the last commit, for heartbeat replies
        self.cursors: dict[str, tuple[int, int]] = {}

    async def submit(self, report: AgentReport) -> ReportResult:
        future: asyncio.Future[ReportResult] = asyncio.get_running_loop().create_future()
        await self._queue.put((report, future))
        return await future

    async def run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < self._max_batch and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            live = [(r, f) for r, f in batch if not f.cancelled()]
            if not live:
                continue
            started = time.perf_counter()
            try:
                results = await self.store.apply_reports([r for r, _ in live])
            except Exception as exc:  # storage failure: fail this batch, keep serving
                log.error("storing %d reports failed: %s", len(live), type(exc).__name__, exc_info=True)
                for _, future in live:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for (report, future), result in zip(live, results, strict=True):
                self.cursors[report.agent.agent_id] = (report.epoch, result.acked_seq)
                if not future.done():
                    future.set_result(result)
            if self._on_batch is not None:
                self._on_batch(len(live), time.perf_counter() - started)


class BeatBuffer:
    """Latest heartbeat per agent in memory; flushed to the store in batches."""

    def __init__(self, store: FleetStore, *, flush_interval: float = 30.0,
                 on_flush: BatchListener | None = None) -> None:
        self._store = store
        self.flush_interval = flush_interval
        self._pending: dict[str, Beat] = {}
        #: newest beat of every agent this replica has heard from (overlay for fleet views)
        self.latest: dict[str, Beat] = {}
        self._on_flush = on_flush
        self._flush_lock = asyncio.Lock()

    def record(self, beat: Beat) -> None:
        self._pending[beat.agent.agent_id] = beat
        self.latest[beat.agent.agent_id] = beat

    def touch(self, agent_id: str, seen_ms: int) -> None:
        """A report also proves liveness; keep the overlay current."""
        beat = self.latest.get(agent_id)
        if beat is not None and beat.seen_ms < seen_ms:
            self.latest[agent_id] = Beat(beat.agent, beat.health, beat.interval_s, seen_ms)

    @property
    def pending(self) -> int:
        return len(self._pending)

    async def flush(self) -> int:
        async with self._flush_lock:
            beats, self._pending = list(self._pending.values()), {}
            if not beats:
                return 0
            started = time.perf_counter()
            try:
                await self._store.save_beats(beats)
            except Exception as exc:
                log.error("flushing %d heartbeats failed: %s", len(beats), type(exc).__name__)
                for beat in beats:  # keep them for the next round unless newer ones came
                    self._pending.setdefault(beat.agent.agent_id, beat)
                return 0
            if self._on_flush is not None:
                self._on_flush(len(beats), time.perf_counter() - started)
            return len(beats)

    async def run(self) -> None:
        try:
            while True:
                await asyncio.sleep(self.flush_interval)
                await self.flush()
        finally:
            with contextlib.suppress(Exception):
                await asyncio.shield(self.flush())
