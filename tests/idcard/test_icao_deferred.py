"""DG2's closing extended-length chunk is checked and decrypted in the background while the read
goes on: it must judge exactly as the inline path does, and a bad answer must still fail the read."""

from __future__ import annotations

import os

import pytest

from agent.domain.idcard import ReadOptions
from agent.drivers.idcard.apdu import ResponseApdu
from agent.drivers.idcard.cipher_suite import AES128, DES3, CipherSuite
from agent.drivers.idcard.secure_messaging import DeferredResponse, SecureMessaging
from agent.drivers.idcard.session import read_document
from agent.errors import DataFormatError, DeviceProtocolError
from agent.simulator.emrtd import CardFaults, EmulatedEmrtd, EmulatedTransport, sample_cccd
from tests.idcard.icao_support import read_card, trust_for


def _pair(suite: CipherSuite, count: int = 2) -> list[SecureMessaging]:
    """Secure-messaging ends sharing one set of session keys and one SSC."""
    ks_enc, ks_mac = os.urandom(suite.key_length), os.urandom(16 if suite is DES3 else suite.key_length)
    return [SecureMessaging(suite, ks_enc, ks_mac, 41) for _ in range(count)]


@pytest.mark.parametrize("suite", [DES3, AES128])
@pytest.mark.parametrize("size", [1, 7, 8, 9, 15, 16, 17, 4000])
def test_deferred_unprotect_matches_the_inline_one(suite: CipherSuite, size: int) -> None:
    terminal, inline, card = _pair(suite, 3)
    data = os.urandom(size)
    card.ssc += 1  # the command's count
    raw = card.protect_response(data, 0x9000)
    terminal.ssc += 1
    inline.ssc += 1
    later = terminal.unprotect_later(raw)
    assert isinstance(later, DeferredResponse)
    assert (later.sw, later.length) == (0x9000, size)
    assert terminal.ssc == card.ssc  # the next command can go out before the check
    assert later.finish() == inline.unprotect(raw) == ResponseApdu(data, 0x9000)


def test_a_bare_status_word_is_returned_at_once() -> None:
    terminal, _ = _pair(DES3)
    answer = terminal.unprotect_later(b"\x69\x88")
    assert answer == ResponseApdu(b"", 0x6988)


@pytest.mark.parametrize("spot", ["cryptogram", "mac", "status"])
def test_a_corrupted_answer_fails_when_finished(spot: str) -> None:
    terminal, card = _pair(DES3)
    card.ssc += 1
    raw = bytearray(card.protect_response(os.urandom(3000), 0x9000))
    index = {"cryptogram": 100, "mac": len(raw) - 3, "status": len(raw) - 13}[spot]
    raw[index] ^= 0x01
    terminal.ssc += 1
    later = terminal.unprotect_later(bytes(raw))
    with pytest.raises(DeviceProtocolError):
        later.finish() if isinstance(later, DeferredResponse) else terminal.unprotect(bytes(raw))


class _CorruptLargest:
    """Flips one byte of the MAC in the largest answer (DG2's closing chunk)."""

    extended_length = True

    def __init__(self, card: EmulatedEmrtd) -> None:
        self._inner = EmulatedTransport(card)
        self.corrupted = 0

    async def transmit(self, apdu: bytes) -> bytes:
        answer = await self._inner.transmit(apdu)
        if len(answer) > 10_000:
            self.corrupted += 1
            answer = answer[:-3] + bytes([answer[-3] ^ 0x5A]) + answer[-2:]
        return answer


async def test_a_bad_mac_on_the_face_chunk_still_fails_the_read() -> None:
    card = EmulatedEmrtd(sample_cccd(pace=()))
    transport = _CorruptLargest(card)
    with pytest.raises(DeviceProtocolError, match="MAC"):
        await read_document(transport, card.issued.mrz_key, ReadOptions(), trust_for(card))
    assert transport.corrupted == 1


async def test_a_face_file_cut_short_is_a_format_error_with_extended_length() -> None:
    with pytest.raises(DataFormatError):
        await read_card(sample_cccd(pace=()), faults=CardFaults(truncate_dg=2), extended_length=True)


async def test_the_deferred_face_is_the_issued_one() -> None:
    result, card, _ = await read_card(sample_cccd(pace=()), options=ReadOptions(include_raw=True),
                                      extended_length=True)
    assert result.raw_data_groups[2] == card.issued.files[0x0102]
    assert result.face is not None
    assert result.verification.passive.value == "valid"


@pytest.mark.parametrize("suite", [DES3, AES128])
def test_kept_cipher_contexts_match_fresh_ones(suite: CipherSuite) -> None:
    """SessionCiphers chains its kept CBC contexts from one message to the next; each result
    must still be what a fresh context with the message's own IV gives."""
    from agent.drivers.idcard.cipher_suite import SessionCiphers

    ks_enc, ks_mac = os.urandom(suite.key_length), os.urandom(16 if suite is DES3 else suite.key_length)
    kept = SessionCiphers(suite, ks_enc, ks_mac)
    block = suite.block_size
    for blocks in (1, 2, 3, 1, 40, 64, 65, 200, 1, 2):  # short ones kept, long ones fresh, interleaved
        data = os.urandom(blocks * block)
        iv = bytes(block) if suite is DES3 else os.urandom(block)
        fresh = SessionCiphers(suite, ks_enc, ks_mac)
        assert kept.decrypt(data, iv) == fresh.decrypt(data, iv)
        assert kept.mac(data) == SessionCiphers(suite, ks_enc, ks_mac).mac(data)


def test_a_response_in_another_layout_is_checked_the_generic_way() -> None:
    """'99' before '87': not the usual layout, so the TLV walk takes it (the MAC covers the
    objects in the order sent); a flipped bit in it still fails."""
    from agent.drivers.idcard import tlv
    from agent.drivers.idcard.cipher_suite import pad
    from agent.drivers.idcard.secure_messaging import canonical_response

    terminal, card = _pair(DES3)
    card.ssc += 2
    plain = os.urandom(20)
    cipher = card._ciphers.encrypt(pad(plain, 8), bytes(8))
    body = b"\x99\x02\x90\x00" + tlv.encode(0x87, b"\x01" + cipher)
    raw = body + b"\x8e\x08" + card._mac(body) + b"\x90\x00"
    assert canonical_response(raw[:-2]) is None
    terminal.ssc += 1
    assert terminal.unprotect(raw) == ResponseApdu(plain, 0x9000)
    broken = bytearray(raw)
    broken[10] ^= 0x01
    terminal.ssc -= 1
    with pytest.raises(DeviceProtocolError):
        terminal.unprotect(bytes(broken))
