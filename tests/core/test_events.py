from __future__ import annotations

import asyncio
import contextlib

import pytest

from agent.core.events import EventBus, SubscriberOverflow
from agent.domain.events import Event, EventKind


def ev(device: str = "d") -> Event:
    return Event(kind=EventKind.DEVICE_STATE_CHANGED, device_id=device, timestamp=0)


async def test_sequence_numbers_increase_without_gaps_and_filters_apply() -> None:
    bus = EventBus()
    got: list[Event] = []

    async def reader() -> None:
        async for e in bus.subscribe(lambda e: e.device_id == "a"):
            got.append(e)
            if len(got) == 2:
                return

    task = asyncio.create_task(reader())
    await asyncio.sleep(0)
    for name in "abab":
        bus.publish(ev(name))
    await asyncio.wait_for(task, 5)
    assert [e.seq for e in got] == [1, 3]
    assert bus.subscriber_count == 0


async def test_slow_subscriber_is_cut_off_not_buffered_forever() -> None:
    bus = EventBus(queue_size=4)
    stream = bus.subscribe()
    first = asyncio.ensure_future(anext(stream))
    await asyncio.sleep(0)
    bus.publish(ev())
    assert (await first).seq == 1  # a subscriber that keeps up gets everything
    for _ in range(10):
        bus.publish(ev())
    with pytest.raises(SubscriberOverflow):
        for _ in range(10):
            await anext(stream)
    await stream.aclose()
    assert bus.subscriber_count == 0


async def test_idle_stream_gets_heartbeats() -> None:
    bus = EventBus()
    stream = bus.subscribe(idle_seconds=0.05)
    e = await asyncio.wait_for(anext(stream), 5)
    assert e.kind is EventKind.HEARTBEAT
    with contextlib.suppress(StopAsyncIteration):
        await stream.aclose()
