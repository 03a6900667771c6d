"""Full reads of emulated cards through the real ICAO 9303 code, in process."""

from __future__ import annotations

import datetime as dt
import hashlib

import pytest

from agent.domain.idcard import CanKey, FieldSource, MrzKey, ReadOptions, Verdict
from agent.drivers.idcard.session import read_document
from agent.drivers.idcard.transport import CardTransport
from agent.errors import AccessDeniedError, CardRemovedError, InvalidRequestError, NotSupportedError
from agent.simulator.emrtd import (
    EmulatedEmrtd,
    EmulatedTransport,
    PaceOffer,
    sample_cccd,
    sample_face,
    sample_passport,
)
from tests.idcard.icao_support import read_card, trust_for


def test_emulated_transport_is_a_card_transport() -> None:
    assert isinstance(EmulatedTransport(EmulatedEmrtd(sample_cccd())), CardTransport)


async def test_cccd_with_pace_and_mrz_reads_everything() -> None:
    result, _, _ = await read_card(sample_cccd())
    assert result.access_protocol == "PACE"
    p = result.personal
    assert p.document_type == "ID"
    assert p.issuing_state == "VNM"
    assert p.document_number == "199012345"
    assert p.id_number == "001199012345"
    assert p.full_name == "Trần Thị Thử Nghiệm"
    assert p.date_of_birth == dt.date(1999, 3, 15)
    assert p.sex == "F"
    assert p.nationality == "VNM"
    assert p.date_of_expiry == dt.date(2039, 3, 15)
    assert p.date_of_issue == dt.date(2024, 1, 10)
    assert p.ethnicity == "Kinh"
    assert p.place_of_origin.startswith("Xã Mẫu Thử")
    assert p.place_of_residence.startswith("Số 1 Đường Kiểm Thử")
    assert (p.father_name, p.mother_name) == ("Trần Văn Mẫu", "Lê Thị Mẫu")
    assert p.old_id_number == "012345678"
    assert p.nationality_name == "Việt Nam"
    assert p.extra_fields == ()
    dg13_fields = {"id_number", "full_name", "date_of_birth", "sex", "date_of_expiry", "date_of_issue",
                   "nationality_name", "ethnicity", "religion", "place_of_origin", "place_of_residence",
                   "identifying_marks", "father_name", "mother_name", "spouse_name", "old_id_number"}
    assert p.sources == {**{name: FieldSource.DG13 for name in dg13_fields},
                         **{name: FieldSource.DG1 for name in ("document_type", "issuing_state",
                                                                "document_number", "nationality", "mrz")}}
    assert result.verification.data is Verdict.VALID
    assert result.face is not None
    assert result.face.original_mime_type == "image/jpeg"
    assert result.face.jpeg == sample_face("jpeg")[0]
    assert (result.face.width, result.face.height) == (240, 320)
    assert result.data_groups_read == (1, 2, 13, 15)
    assert result.verification.passive is Verdict.VALID
    assert result.verification.active is Verdict.VALID
    assert result.verification.chip is Verdict.NOT_SUPPORTED
    assert result.raw_data_groups == {}


async def test_cccd_with_pace_and_can() -> None:
    result, _, _ = await read_card(sample_cccd(can="654321"), key=CanKey("654321"))
    assert result.access_protocol == "PACE"
    assert result.personal.id_number == "001199012345"


async def test_bac_only_card_is_read_with_bac() -> None:
    result, _, _ = await read_card(sample_cccd(pace=()))
    assert result.access_protocol == "BAC"
    assert result.verification.passive is Verdict.VALID


@pytest.mark.parametrize(
    ("cipher", "parameter_id"),
    [
        ("3DES", 13),
        ("AES-128", 12),
        ("AES-192", 13),
        ("AES-256", 15),
        ("AES-256", 16),
        ("AES-128", 9),
        ("AES-256", 18),
    ],
)
async def test_pace_cipher_suites_and_domain_parameters(cipher: str, parameter_id: int) -> None:
    result, _, _ = await read_card(sample_cccd(pace=(PaceOffer(cipher, parameter_id),)))
    assert result.access_protocol == "PACE"
    assert result.verification.passive is Verdict.VALID
    assert result.verification.active is Verdict.VALID


async def test_pace_prefers_the_strongest_offer() -> None:
    offers = (PaceOffer("3DES", 13), PaceOffer("AES-256", 13), PaceOffer("AES-128", 12))
    result, _card, transport = await read_card(sample_cccd(pace=offers))
    assert result.access_protocol == "PACE"
    assert transport.sent == result.apdu_count


async def test_passport_with_bac_chip_and_active_authentication() -> None:
    result, _, _ = await read_card(sample_passport())
    assert result.access_protocol == "BAC"
    assert result.personal.document_type == "P"
    assert result.personal.document_number == "C9990001"
    assert result.personal.full_name == "TRAN THI THU NGHIEM"
    assert result.personal.id_number == "001199012345"
    assert result.data_groups_read == (1, 2, 14, 15)
    assert result.verification == result.verification.__class__(
        Verdict.VALID, Verdict.VALID, Verdict.VALID, (), data=Verdict.NOT_SUPPORTED
    )
    assert result.personal.sources["full_name"] is FieldSource.DG1
    assert result.personal.sources["place_of_residence"] is FieldSource.MISSING


async def test_chip_authentication_with_3des() -> None:
    result, _, _ = await read_card(sample_passport(chip_auth="3DES"))
    assert result.verification.chip is Verdict.VALID


async def test_chip_authentication_after_pace_aes256() -> None:
    result, _, _ = await read_card(sample_cccd(chip_auth="AES-256", pace=(PaceOffer("AES-256", 13),)))
    assert result.verification.chip is Verdict.VALID
    assert 14 in result.data_groups_read


async def test_jpeg2000_face_is_converted_to_jpeg() -> None:
    result, _, _ = await read_card(sample_cccd(face_format="jp2"))
    assert result.face is not None
    assert result.face.original_mime_type == "image/jp2"
    assert result.face.jpeg.startswith(b"\xff\xd8\xff")
    assert (result.face.width, result.face.height) == (240, 320)


async def test_flat_parents_layout_is_read_too() -> None:
    result, _, _ = await read_card(sample_cccd(nested_parents=False))
    assert (result.personal.father_name, result.personal.mother_name) == ("Trần Văn Mẫu", "Lê Thị Mẫu")


async def test_options_skip_face_and_return_raw_groups() -> None:
    options = ReadOptions(include_face=False, include_raw=True, active_authentication=False)
    result, card, _ = await read_card(sample_cccd(), options=options)
    assert result.face is None
    assert 2 not in result.data_groups_read
    assert result.verification.active is Verdict.NOT_SUPPORTED
    assert result.raw_data_groups[1] == card.issued.files[0x0101]


def dg2_read_commands(log: list[tuple[bytes, bytes]]) -> int:
    """READ BINARY commands sent from the short-EF read of DG2 up to the next file."""
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


@pytest.mark.parametrize(("extended", "expected"), [(True, range(1, 4)), (False, range(90, 130))])
async def test_apdus_to_read_dg2(extended: bool, expected: range) -> None:
    card = EmulatedEmrtd(sample_cccd(pace=(), extended_length=extended))
    transport = EmulatedTransport(card)
    log = transport.record()
    await read_document(transport, card.issued.mrz_key, ReadOptions(active_authentication=False), None)
    assert 15_000 < len(card.issued.files[0x0102]) < 30_000
    assert dg2_read_commands(log) in expected


async def test_short_reads_when_the_reader_lacks_extended_length() -> None:
    long_result, _, _ = await read_card(sample_cccd(extended_length=False))
    ext_result, _, _ = await read_card(sample_cccd())
    assert long_result.personal.id_number == ext_result.personal.id_number
    assert long_result.face == ext_result.face
    assert long_result.apdu_count > ext_result.apdu_count + 90  # ~22 KB DG2 in 0xDF-byte chunks


async def test_reader_claims_extended_but_the_card_refuses_then_short_reads() -> None:
    result, _, _ = await read_card(sample_cccd(extended_length=False), extended_length=True)
    assert result.verification.passive is Verdict.VALID
    assert result.face is not None


async def test_wrong_mrz_is_access_denied_once_and_never_retried() -> None:
    card = EmulatedEmrtd(sample_cccd(pace=()))
    transport = EmulatedTransport(card)
    with pytest.raises(AccessDeniedError) as err:
        await read_document(transport, MrzKey("199012346", "990315", "390315"), ReadOptions(), None)
    assert err.value.reason == "ACCESS_DENIED"
    assert card.wrong_key_attempts == 1
    assert transport.sent <= 4


async def test_wrong_can_is_access_denied_with_pace() -> None:
    card = EmulatedEmrtd(sample_cccd())
    with pytest.raises(AccessDeniedError):
        await read_document(EmulatedTransport(card), CanKey("000000"), ReadOptions(), None)
    assert card.wrong_key_attempts == 1


async def test_blocked_card_reports_card_blocked() -> None:
    from agent.simulator.emrtd import CardFaults

    card = EmulatedEmrtd(sample_cccd(), faults=CardFaults(max_wrong_key_attempts=1))
    with pytest.raises(AccessDeniedError):
        await read_document(EmulatedTransport(card), CanKey("000000"), ReadOptions(), None)
    with pytest.raises(AccessDeniedError) as err:
        await read_document(EmulatedTransport(card), card.issued.mrz_key, ReadOptions(), None)
    assert err.value.reason == "CARD_BLOCKED"


async def test_can_on_a_card_without_pace_is_not_supported() -> None:
    card = EmulatedEmrtd(sample_cccd(pace=()))
    with pytest.raises(NotSupportedError):
        await read_document(EmulatedTransport(card), CanKey("123456"), ReadOptions(), None)


async def test_malformed_keys_are_invalid_requests() -> None:
    card = EmulatedEmrtd(sample_cccd())
    with pytest.raises(InvalidRequestError):
        await read_document(
            EmulatedTransport(card), MrzKey("12345", "99-03-15", "390315"), ReadOptions(), None
        )
    with pytest.raises(InvalidRequestError):
        await read_document(EmulatedTransport(card), CanKey("12ab"), ReadOptions(), None)


async def test_card_pulled_mid_read_then_next_read_works() -> None:
    card = EmulatedEmrtd(sample_cccd())
    with pytest.raises(CardRemovedError):
        await read_document(EmulatedTransport(card, remove_after=9), card.issued.mrz_key, ReadOptions(), None)
    result = await read_document(EmulatedTransport(card), card.issued.mrz_key, ReadOptions(), trust_for(card))
    assert result.verification.passive is Verdict.VALID


async def test_apdu_count_matches_what_the_transport_carried() -> None:
    result, _, transport = await read_card(sample_passport())
    assert result.apdu_count == transport.sent
    assert hashlib.sha256(result.face.jpeg if result.face else b"").digest()


async def test_card_without_short_ef_identifiers_is_read_by_select() -> None:
    from agent.simulator.emrtd import CardFaults

    card = EmulatedEmrtd(sample_cccd(), faults=CardFaults(no_sfi=True))
    transport = EmulatedTransport(card)
    log = transport.record()
    result = await read_document(transport, card.issued.mrz_key, ReadOptions(), trust_for(card))
    assert result.verification.passive is Verdict.VALID
    assert result.personal.id_number == "001199012345"
    assert sum(1 for cmd, _ in log if cmd[1] == 0xA4 and cmd[2] == 0x02) >= 5  # SELECT EF by FID


def _large_dg2(size: int) -> bytes:
    import io
    import random

    from PIL import Image

    from agent.drivers.idcard.face import build_dg2

    rng = random.Random(size)
    side = 64
    while True:
        img = Image.frombytes("RGB", (side, side), rng.randbytes(side * side * 3))
        out = io.BytesIO()
        img.save(out, format="JPEG", quality=95)
        if len(out.getvalue()) >= size:
            return build_dg2(out.getvalue(), side, side, jpeg2000=False)
        side += 32


@pytest.mark.parametrize("extended", [True, False])
async def test_files_beyond_32k_use_odd_read_binary(extended: bool) -> None:
    dg2 = _large_dg2(70_000)
    card = EmulatedEmrtd(sample_cccd(pace=(), extended_length=extended, extra_data_groups={2: dg2}))
    transport = EmulatedTransport(card)
    log = transport.record()
    result = await read_document(transport, card.issued.mrz_key, ReadOptions(include_raw=True), trust_for(card))
    assert result.raw_data_groups[2] == dg2
    assert result.verification.passive is Verdict.VALID
    assert any(cmd[1] == 0xB1 for cmd, _ in log)


async def test_custom_data_groups_are_signed_and_listed() -> None:
    from agent.drivers.idcard import tlv
    from agent.drivers.idcard.lds import parse_com

    extra = {11: tlv.encode(0x6B, tlv.encode(0x5F0E, b"TRAN<<THI"))}
    result, card, _ = await read_card(sample_passport(extra_data_groups=extra))
    assert 11 in parse_com(card.issued.files[0x011E]).data_groups
    assert result.verification.passive is Verdict.VALID


async def test_broken_pace_falls_back_to_bac_with_the_mrz_only() -> None:
    from agent.errors import DeviceProtocolError
    from agent.simulator.emrtd import CardFaults

    result, card, _ = await read_card(sample_cccd(), faults=CardFaults(broken_pace=True))
    assert result.access_protocol == "BAC"
    assert result.verification.passive is Verdict.VALID
    assert card.wrong_key_attempts == 0
    with pytest.raises(DeviceProtocolError):
        await read_card(sample_cccd(), key=CanKey("123456"), faults=CardFaults(broken_pace=True))


async def test_wrong_mrz_on_a_pace_card_is_not_retried_with_bac() -> None:
    card = EmulatedEmrtd(sample_cccd())
    transport = EmulatedTransport(card)
    log = transport.record()
    with pytest.raises(AccessDeniedError):
        await read_document(transport, MrzKey("199012346", "990315", "390315"), ReadOptions(), None)
    assert card.wrong_key_attempts == 1
    assert not any(cmd[1] in (0x84, 0x82) for cmd, _ in log)  # no GET CHALLENGE / EXTERNAL AUTHENTICATE
