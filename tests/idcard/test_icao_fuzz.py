"""A card that answers anything: the read ends in a typed agent error (or a result), never in
another exception and never in a hang."""

from __future__ import annotations

import asyncio
import contextlib

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.domain.idcard import CanKey, MrzKey, ReadOptions
from agent.drivers.idcard.session import read_document
from agent.errors import AgentError
from agent.simulator.emrtd import EmulatedEmrtd, EmulatedTransport, sample_cccd

KEY = MrzKey("199012345", "990315", "390315")


class FuzzTransport:
    """Answers from a list of byte strings, then with 9000, bounded in length of session."""

    extended_length = True

    def __init__(self, answers: list[bytes]) -> None:
        self.answers = answers
        self.sent = 0

    async def transmit(self, apdu: bytes) -> bytes:
        self.sent += 1
        assert self.sent < 20_000, "the reader kept going for ever"
        if self.answers:
            return self.answers.pop(0)
        return b"\x90\x00"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.binary(max_size=80), max_size=12), st.booleans())
def test_random_answers_give_typed_errors(answers: list[bytes], use_can: bool) -> None:
    transport = FuzzTransport(list(answers))
    key = CanKey("123456") if use_can else KEY
    with contextlib.suppress(AgentError):
        asyncio.run(read_document(transport, key, ReadOptions(), None))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 40), st.integers(0, 255), st.integers(0, 300))
def test_a_real_session_with_one_corrupted_answer(index: int, value: int, position: int) -> None:
    """Corrupt one byte of one answer of a genuine card session."""
    card = EmulatedEmrtd(_PROFILE)
    inner = EmulatedTransport(card)

    class Corrupting:
        extended_length = True

        def __init__(self) -> None:
            self.count = 0

        async def transmit(self, apdu: bytes) -> bytes:
            answer = await inner.transmit(apdu)
            self.count += 1
            if self.count == index and answer:
                spot = position % len(answer)
                answer = answer[:spot] + bytes([value]) + answer[spot + 1:]
            return answer

    with contextlib.suppress(AgentError):
        asyncio.run(read_document(Corrupting(), card.issued.mrz_key, ReadOptions(), None))


_PROFILE = sample_cccd()
