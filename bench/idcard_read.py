"""Benchmark: reading a CCCD from the in-process eMRTD emulator.

1. Full read (BAC, EF.COM, EF.SOD, DG1, DG2, DG13, DG15, passive and active authentication)
   through the real ICAO 9303 code, against the emulator.
2. Baseline: replaying the recorded APDU sequence against a fresh emulator seeded like the
   recorded one (so it gives the same answers), with no terminal crypto or parsing. The
   card's own work stays in both; the ratio is the cost the terminal side adds.
3. Pure replay (recorded responses, no card at all): the protocol floor.
4. APDUs to read DG2 with an extended-length reader, and with short APDUs only.

Run: .venv/bin/python bench/idcard_read.py
"""

from __future__ import annotations

import asyncio
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agent.domain.idcard import CardRead, ReadOptions
from agent.drivers.idcard.session import read_document
from agent.drivers.idcard.trust_store import TrustStore
from agent.simulator.emrtd import EmulatedEmrtd, EmulatedTransport, IssuedCard, issue, sample_cccd

ROUNDS = 30
SEED = 9303


def seeded() -> Callable[[int], bytes]:
    rng = random.Random(SEED)
    return rng.randbytes


async def full_read(
    issued: IssuedCard, trust: TrustStore
) -> tuple[float, list[tuple[bytes, bytes]], CardRead]:
    card = EmulatedEmrtd(issued, random_bytes=seeded())
    transport = EmulatedTransport(card)
    log = transport.record()
    start = time.perf_counter()
    result = await read_document(transport, issued.mrz_key, ReadOptions(chip_authentication=False), trust)
    return time.perf_counter() - start, log, result


async def replay_through_card(issued: IssuedCard, log: list[tuple[bytes, bytes]]) -> tuple[float, int]:
    card = EmulatedEmrtd(issued, random_bytes=seeded())
    transport = EmulatedTransport(card)
    same = 0
    start = time.perf_counter()
    answers = [await transport.transmit(command) for command, _ in log]
    elapsed = time.perf_counter() - start
    same = sum(1 for answer, (_, recorded) in zip(answers, log, strict=True) if answer == recorded)
    return elapsed, same


async def replay_recorded(log: list[tuple[bytes, bytes]]) -> float:
    async def transmit(response: bytes) -> bytes:
        return response

    start = time.perf_counter()
    for _, response in log:
        await transmit(response)
    return time.perf_counter() - start


def dg2_apdus(log: list[tuple[bytes, bytes]]) -> int:
    count, in_dg2 = 0, False
    for sent, _ in log:
        if sent[1] in (0xB0, 0xB1):
            if sent[1] == 0xB0 and sent[2] & 0x80:
                in_dg2 = (sent[2] & 0x1F) == 2
            if in_dg2:
                count += 1
        else:
            in_dg2 = False
    return count


async def main() -> None:
    profile = sample_cccd(pace=())  # BAC, DG1 DG2 DG13 DG15, RSA AA
    issued = issue(profile)
    trust = TrustStore()
    trust.add_certificate(issued.pki.csca_der)

    await full_read(issued, trust)  # warm-up (imports, caches)
    reads, replays, floors = [], [], []
    log: list[tuple[bytes, bytes]] = []
    faithful = 0
    for _ in range(ROUNDS):
        elapsed, log, result = await full_read(issued, trust)
        assert result.verification.passive.value == "valid"
        assert result.verification.active.value == "valid"
        reads.append(elapsed)
        replay, faithful = await replay_through_card(issued, log)
        replays.append(replay)
        floors.append(await replay_recorded(log))
    # min is the figure least disturbed by other load on a shared machine; medians for context
    read_ms, replay_ms, floor_ms = (min(v) * 1000 for v in (reads, replays, floors))
    print(f"APDUs per full read: {len(log)} (replay answered identically: {faithful}/{len(log)})")
    print(f"full read (BAC, all files, PA, AA), best of {ROUNDS}: {read_ms:.2f} ms"
          f" (median {statistics.median(reads) * 1000:.2f})")
    print(f"replay of the same APDUs through the emulator, no terminal crypto/parsing: {replay_ms:.2f} ms"
          f" (median {statistics.median(replays) * 1000:.2f})")
    print(f"replay of recorded responses, no card: {floor_ms:.3f} ms")
    print(f"RATIO full read / replay through emulator: {read_ms / replay_ms:.2f}x (target <= 1.3x via pcscd)")
    print(f"terminal-side cost per read: {read_ms - replay_ms:.2f} ms")

    for extended in (True, False):
        card = EmulatedEmrtd(sample_cccd(pace=(), extended_length=extended))
        transport = EmulatedTransport(card)
        dg_log = transport.record()
        await read_document(transport, card.issued.mrz_key, ReadOptions(active_authentication=False), None)
        size = len(card.issued.files[0x0102])
        label = "extended-length reader" if extended else "short APDUs only"
        target = " (target <= 3)" if extended else ""
        print(f"APDUs to read DG2 ({size} bytes), {label}: {dg2_apdus(dg_log)}{target}")


if __name__ == "__main__":
    asyncio.run(main())
