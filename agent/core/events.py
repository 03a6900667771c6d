"""The event bus: one ordered stream of events, fanned out to subscribers.

Each subscriber has a bounded queue. A subscriber that falls too far behind is
cut off (its iterator raises :class:`SubscriberOverflow`) instead of making the
agent hold an unbounded backlog; clients reconnect and ask for a snapshot.
Payloads (barcode text) pass through memory only and are never logged.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass

from agent.domain.events import Event, EventKind
from agent.errors import RateLimitedError


class SubscriberOverflow(RateLimitedError):
    """The subscriber did not keep up with the event stream and was disconnected."""

    reason = "EVENT_BACKLOG"


EventFilter = Callable[[Event], bool]


@dataclass(eq=False)
class _Subscriber:
    queue: asyncio.Queue[Event | None]
    accepts: EventFilter
    overflowed: bool = False


class EventBus:
    """Assigns sequence numbers and delivers each event to every matching subscriber."""

    def __init__(self, queue_size: int = 1024) -> None:
        self._seq = 0
        self._queue_size = queue_size
        self._subscribers: set[_Subscriber] = set()
        self._listeners: list[Callable[[Event], None]] = []

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers)

    @property
    def last_seq(self) -> int:
        return self._seq

    def add_listener(self, listener: Callable[[Event], None]) -> None:
        """In-process listener called synchronously for every event (metrics, uplink)."""
        self._listeners.append(listener)

    def publish(self, event: Event) -> Event:
        """Stamp ``event`` with the next sequence number and deliver it. Never blocks."""
        self._seq += 1
        stamped = dataclasses.replace(event, seq=self._seq, timestamp=event.timestamp or time.time())
        for listener in self._listeners:
            listener(stamped)
        for sub in list(self._subscribers):
            if sub.overflowed or not sub.accepts(stamped):
                continue
            try:
                sub.queue.put_nowait(stamped)
            except asyncio.QueueFull:
                sub.overflowed = True
                # make room for the wake-up marker so the reader notices at once
                sub.queue.get_nowait()
                sub.queue.put_nowait(None)
        return stamped

    async def subscribe(self, accepts: EventFilter | None = None, initial: list[Event] | None = None,
                        idle_seconds: float | None = None) -> AsyncGenerator[Event, None]:
        """Yield events from now on (after ``initial``, which are yielded first, unnumbered).

        With ``idle_seconds``, a ``heartbeat`` event is yielded whenever nothing happened for
        that long, so idle streams stay alive through proxies and dead clients are noticed.
        """
        sub = _Subscriber(asyncio.Queue(self._queue_size), accepts or (lambda _e: True))
        self._subscribers.add(sub)
        try:
            for event in initial or ():
                yield event
            while True:
                try:
                    item = await asyncio.wait_for(sub.queue.get(), idle_seconds)
                except TimeoutError:
                    yield Event(kind=EventKind.HEARTBEAT, device_id="", timestamp=time.time(), seq=self._seq)
                    continue
                if item is None or sub.overflowed:
                    raise SubscriberOverflow("event subscriber fell behind and was disconnected")
                yield item
        finally:
            self._subscribers.discard(sub)
