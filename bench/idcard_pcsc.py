"""ID-card reads and card events through a real pcscd + vpcd + the eMRTD emulator, same run.

1. Full read (BAC, every file, passive + active authentication) through the ``pcsc``
   backend, against replaying the very same APDU sequence through pcscd with no crypto
   and no parsing (a tight loop of SCardTransmit on one connection). The card runs with
   ``--replayable`` (its randomness repeats after each reset), so the replayed session is
   accepted byte for byte and the card does the same work in both. Target: <= 1.3x.
2. Card inserted -> ``card_inserted`` at the backend, against pcscd's own notice (a raw
   SCardGetStatusChange waiter in this process). Target: <= +20 ms.
3. pcscd stopped and started again: time from its start to the reader READY at the backend
   (target: within 2 s), and to the card present again.

    /work/venv/bin/python bench/idcard_pcsc.py [--reads 15] [--inserts 8]

Starts its own private pcscd (see tests/idcard/pcsc_testbed.py) and stops it at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.idcard.pcsc_testbed import (  # noqa: E402
    PcscdPeer,
    VpcdCardProcess,
    claim_socket_path,
    wait_for_card,
)

SOCKET = claim_socket_path()  # before anything talks to pcscd

from agent.domain.events import EventKind  # noqa: E402
from agent.domain.idcard import ReadOptions  # noqa: E402
from agent.drivers.base import Device  # noqa: E402
from agent.drivers.idcard import mrz  # noqa: E402
from agent.drivers.idcard.pcsc import PcscCardConnection  # noqa: E402
from agent.drivers.idcard.reader import PcscBackend, PcscIdCardReader  # noqa: E402
from agent.simulator.emrtd import sample_cccd  # noqa: E402
from tests.support.context import RecordingContext  # noqa: E402

KEY = mrz.parse(sample_cccd().mrz).key()


class RecordingConnection(PcscCardConnection):
    """Keeps every (command, response) of the session: the replay script."""

    script: list[tuple[bytes, bytes]] = []

    def transmit(self, apdu: bytes) -> bytes:
        response = super().transmit(apdu)
        RecordingConnection.script.append((apdu, response))
        return response


class TimedContext(RecordingContext):
    """Stamps card events with perf_counter (the raw waiter's clock)."""

    inserted_at: list[float]

    def emit(self, device: Device, kind: EventKind, attributes: Any = None, payload: bytes = b"") -> None:
        if kind is EventKind.CARD_INSERTED:
            self.inserted_at.append(time.perf_counter())
        super().emit(device, kind, attributes, payload)


def reset_card(reader: str) -> None:
    """Power-cycle the card so the replayable emulator starts its randomness over."""
    connection = PcscCardConnection(reader).open()
    connection.close(reset=True)


def replay(reader: str, script: list[tuple[bytes, bytes]]) -> float:
    """Connect, send the recorded commands, check every answer, disconnect. Returns seconds."""
    started = time.perf_counter()
    connection = PcscCardConnection(reader).open()
    try:
        for command, expected in script:
            if connection.transmit(command) != expected:
                raise AssertionError("the replayed session diverged from the recording")
    finally:
        connection.close()
    return time.perf_counter() - started


async def bench_reads(ctx: TimedContext, backend: PcscBackend, device: PcscIdCardReader, reads: int
                      ) -> tuple[float, float, int]:
    options = ReadOptions()
    for _ in range(2):  # warm-up (imports, caches, pcscd threads)
        await device.read_card(KEY, options)
    await ctx.run_blocking(reset_card, device.reader)
    backend.connection_factory = RecordingConnection
    RecordingConnection.script = []
    recorded = await device.read_card(KEY, options)
    backend.connection_factory = PcscCardConnection
    script = list(RecordingConnection.script)
    assert recorded.verification.passive.value == "valid", recorded.verification
    assert recorded.verification.active.value == "valid", recorded.verification

    full: list[float] = []
    bare: list[float] = []
    for _ in range(reads):
        started = time.perf_counter()
        await device.read_card(KEY, options)
        full.append(time.perf_counter() - started)
        await ctx.run_blocking(reset_card, device.reader)
        bare.append(await ctx.run_blocking(replay, device.reader, script))
    return statistics.median(full), statistics.median(bare), len(script)


async def bench_inserts(ctx: TimedContext, card: VpcdCardProcess, device: PcscIdCardReader, inserts: int
                        ) -> list[float]:
    added: list[float] = []
    loop = asyncio.get_running_loop()
    for _ in range(inserts):
        card.remove()
        await ctx.run_blocking(lambda: wait_for_card(device.reader, present=False))
        await ctx.wait_for(lambda: not device.card_present())
        ctx.inserted_at = []
        waiter = loop.run_in_executor(None, lambda: wait_for_card(device.reader, present=True, timeout=20))
        await asyncio.sleep(0.05)  # let the raw waiter enter SCardGetStatusChange
        card.insert()
        raw_notice = await waiter
        await ctx.wait_for(lambda: bool(ctx.inserted_at))
        added.append(ctx.inserted_at[0] - raw_notice)
    return added


async def bench_restart(ctx: TimedContext, peer: PcscdPeer, device: PcscIdCardReader, down_for: float
                        ) -> tuple[float, float]:
    """Stop pcscd for ``down_for`` s, start it again: seconds until the reader is READY, and
    until the card (whose process reconnects to the new vpcd) is present again."""
    from agent.domain.device import DeviceState

    peer.stop()
    await ctx.wait_for(lambda: device.health().state is DeviceState.ERROR)
    await asyncio.sleep(down_for)
    started = await ctx.run_blocking(peer.start)
    await ctx.wait_for(lambda: device.health().state is DeviceState.READY)
    ready = time.perf_counter() - started
    await ctx.wait_for(device.card_present)
    return ready, time.perf_counter() - started


async def main(reads: int, inserts: int) -> None:
    peer = PcscdPeer(SOCKET)
    peer.start()
    with tempfile.TemporaryDirectory() as tmp:
        ctx = TimedContext(state_path=Path(tmp))
        ctx.inserted_at = []
        card_args = ("--csca-out", f"{tmp}/csca.der")
        card = VpcdCardProcess(peer.port, "--no-pace", "--replayable", *card_args, reader=peer.reader_names[0])
        backend = PcscBackend(ctx, {"csca_dir": tmp})
        try:
            card.start()
            wait_for_card(card.reader)
            await backend.start()
            await ctx.wait_for(lambda: card.reader in backend.devices())
            device = backend.devices()[card.reader]
            await ctx.wait_for(device.card_present)

            full, bare, apdus = await bench_reads(ctx, backend, device, reads)
            print(f"full read (BAC, all files, PA, AA) through pcscd: median {full * 1000:.1f} ms")
            print(f"replay of the same {apdus} APDUs, no crypto/parsing: median {bare * 1000:.1f} ms")
            print(f"ratio full/replay: {full / bare:.2f}x (target <= 1.3x)")

            added = await bench_inserts(ctx, card, device, inserts)
            median_ms = statistics.median(added) * 1000
            # Both waiters are woken by the same pcscd notice; thread scheduling decides which runs
            # first, so a difference can come out slightly negative.
            print(f"card insert -> backend event vs pcscd's own notice: median {median_ms:+.2f} ms, "
                  f"max {max(added) * 1000:+.2f} ms over {len(added)} inserts (target <= +20 ms)")

            card.insert()
            await ctx.wait_for(device.card_present)
            for down_for in (0.2, 3.0):
                ready, with_card = await bench_restart(ctx, peer, device, down_for)
                print(f"pcscd down {down_for:.1f} s then started: reader READY after {ready * 1000:.0f} ms, "
                      f"card present after {with_card * 1000:.0f} ms (target: reader within 2 s)")
        finally:
            await backend.stop()
            card.stop()
            peer.cleanup()
            await ctx.aclose()


if __name__ == "__main__":
    import logging

    logging.basicConfig(level=logging.ERROR)  # the backend's "pcscd not reachable" is expected here
    parser = argparse.ArgumentParser()
    parser.add_argument("--reads", type=int, default=15)
    parser.add_argument("--inserts", type=int, default=8)
    arguments = parser.parse_args()
    asyncio.run(main(arguments.reads, arguments.inserts))
