"""Parsers of card data: unit cases plus hypothesis property tests asserting that any input
either parses or raises a typed error (DataFormatError / DeviceProtocolError), never
anything else, and never hangs."""

from __future__ import annotations

import contextlib
import datetime as dt

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.drivers.idcard import lds, tlv
from agent.drivers.idcard.active_auth import parse_dg15
from agent.drivers.idcard.apdu import CommandApdu, ResponseApdu, parse_command
from agent.drivers.idcard.cipher_suite import AES128, DES3
from agent.drivers.idcard.face import build_dg2, parse_dg2
from agent.drivers.idcard.qr import parse_cccd_qr
from agent.drivers.idcard.secure_messaging import SecureMessaging
from agent.drivers.idcard.security_infos import parse_security_infos
from agent.drivers.idcard.sod import parse_sod
from agent.errors import DataFormatError, DeviceProtocolError, NotSupportedError
from agent.simulator.emrtd import EmulatedEmrtd, sample_cccd, sample_face

TYPED = (DataFormatError, DeviceProtocolError)
FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _card() -> EmulatedEmrtd:
    return EmulatedEmrtd(sample_cccd(chip_auth="AES-128"))


# -- TLV ------------------------------------------------------------------------------------------


def test_tlv_basics() -> None:
    data = tlv.encode(0x5F1F, b"x" * 300) + tlv.encode(0x7F61, tlv.encode(0x02, b"\x01"))
    items = tlv.parse_all(data)
    assert [i.tag for i in items] == [0x5F1F, 0x7F61]
    assert len(items[0].value) == 300
    assert items[1].constructed
    assert items[1].children()[0].value == b"\x01"
    assert tlv.header_size(data) == (5, 300)
    assert "len=300" in repr(items[0])
    for bad in (b"\x5f", b"\x04\x80", b"\x04\x85\x00\x00\x00\x00\x01", b"\x04\x05abc", b"\x04\x82\x01"):
        with pytest.raises(DataFormatError):
            tlv.parse_all(bad)
    with pytest.raises(DataFormatError):
        tlv.parse_single(tlv.encode(0x04, b"a") + b"\x01", 0x04)
    assert tlv.parse_single(tlv.encode(0x04, b"a") + b"\x00\x00", 0x04).value == b"a"


@FAST
@given(st.binary(max_size=200))
def test_tlv_walker_is_total(data: bytes) -> None:
    try:
        for item in tlv.iter_tlvs(data):
            if item.constructed:
                item.children()
    except DataFormatError:
        pass


@FAST
@given(st.integers(0, 0x7FFFFF), st.binary(max_size=600))
def test_tlv_round_trip(tag_seed: int, value: bytes) -> None:
    tag = [0x04, 0x5F1F, 0x7F61, 0x53][tag_seed % 4]
    assert tlv.parse_single(tlv.encode(tag, value)) == tlv.Tlv(tag, value, len(tlv.encode(tag, value)))


# -- APDUs ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "apdu",
    [
        CommandApdu(0, 0xA4, 4, 0x0C, b"\xa0\x00"),
        CommandApdu(0, 0xB0, 0, 0, le=256),
        CommandApdu(0, 0xB0, 0, 0, le=65536),
        CommandApdu(0, 0x88, 0, 0, b"12345678", le=256),
        CommandApdu(0, 0xB0, 0, 0, le=1000),
        CommandApdu(0, 0xD6, 0, 0, b"x" * 300),
        CommandApdu(0, 0x86, 0, 0, b"x" * 300, le=65536),
        CommandApdu(0, 0x84, 0, 0),
    ],
)
def test_command_apdu_round_trip(apdu: CommandApdu) -> None:
    decoded, extended = parse_command(apdu.encode())
    assert decoded == apdu
    assert extended == apdu.needs_extended()


def test_response_apdu() -> None:
    assert ResponseApdu.parse(b"\x01\x90\x00") == ResponseApdu(b"\x01", 0x9000)
    with pytest.raises(DeviceProtocolError):
        ResponseApdu.parse(b"\x90")


@FAST
@given(st.binary(max_size=300))
def test_command_parser_is_total(data: bytes) -> None:
    with contextlib.suppress(DataFormatError):
        parse_command(data)


@FAST
@given(st.binary(max_size=300), st.sampled_from([DES3, AES128]))
def test_secure_messaging_unprotect_is_total(data: bytes, suite: object) -> None:
    assert suite is DES3 or suite is AES128
    sm = SecureMessaging(suite, bytes(range(16)), bytes(range(16, 32)), 5)
    with contextlib.suppress(DeviceProtocolError):
        sm.unprotect(data)
    try:
        cmd, _ = parse_command(b"\x0c\xb0\x00\x00" + bytes([len(data[:255])]) + data[:255])
        sm.unprotect_command(cmd)
    except TYPED:
        pass


@FAST
@given(st.binary(min_size=1, max_size=64))
def test_emulated_card_answers_any_command_with_a_status_word(data: bytes) -> None:
    card = _SHARED_CARD
    answer = card.transmit(data)
    assert len(answer) >= 2


_SHARED_CARD = EmulatedEmrtd(sample_cccd())


# -- LDS files ------------------------------------------------------------------------------------


def test_com_and_dg1() -> None:
    card = _card()
    com = lds.parse_com(card.issued.files[0x011E])
    assert com.data_groups == (1, 2, 13, 14, 15)
    assert com.lds_version == "0107"
    assert lds.parse_dg1(card.issued.files[0x0101]).document_number == "199012345"


@FAST
@given(st.binary(max_size=120))
def test_com_dg1_dg15_security_infos_are_total(data: bytes) -> None:
    for parser in (lds.parse_com, lds.parse_dg1, parse_dg15, parse_security_infos):
        with contextlib.suppress(*TYPED):
            parser(data)


@FAST
@given(st.integers(0, 10_000), st.integers(0, 255))
def test_mutated_dg14_and_card_access(position: int, value: int) -> None:
    card = _card()
    for raw in (lds.unwrap(card.issued.files[0x010E], 14), card.issued.files[0x011C]):
        mutated = bytearray(raw)
        mutated[position % len(mutated)] = value
        with contextlib.suppress(*TYPED):
            parse_security_infos(bytes(mutated))


def test_dg14_infos() -> None:
    infos = parse_security_infos(lds.unwrap(_card().issued.files[0x010E], 14))
    assert infos.chip_auth[0].ecdh
    assert infos.chip_auth_keys[0].curve.name == "brainpoolP256r1"


# -- DG2 ------------------------------------------------------------------------------------------


def test_dg2_jpeg_and_errors() -> None:
    image, width, height = sample_face("jpeg")
    face = parse_dg2(build_dg2(image, width, height, jpeg2000=False))
    assert face.jpeg == image
    assert "redacted" in repr(face)
    with pytest.raises(DataFormatError):
        parse_dg2(build_dg2(b"\x89PNG....", 1, 1, jpeg2000=False))
    with pytest.raises(DataFormatError):
        parse_dg2(build_dg2(b"\xff\xd8\xff\xe0garbage", 1, 1, jpeg2000=False))
    with pytest.raises(DataFormatError):
        parse_dg2(build_dg2(sample_face("jp2")[0][:200], 1, 1, jpeg2000=True))


@settings(max_examples=120, deadline=None)
@given(st.integers(0, 400), st.integers(0, 255))
def test_mutated_dg2_header_parses_or_raises(position: int, value: int) -> None:
    image, width, height = sample_face("jpeg")
    dg2 = bytearray(build_dg2(image[:2000], width, height, jpeg2000=False))
    dg2[position] = value
    with contextlib.suppress(*TYPED):
        parse_dg2(bytes(dg2))


@FAST
@given(st.binary(max_size=300))
def test_dg2_parser_is_total(data: bytes) -> None:
    with contextlib.suppress(*TYPED):
        parse_dg2(data)


# -- SOD ------------------------------------------------------------------------------------------


def test_sod_parses() -> None:
    sod = parse_sod(_card().issued.files[0x011D])
    assert sod.hash_algorithm == "sha256"
    assert sorted(sod.data_group_hashes) == [1, 2, 13, 14, 15]
    assert sod.ds_certificate is not None


@settings(max_examples=150, deadline=None)
@given(st.integers(0, 5000), st.integers(0, 255))
def test_mutated_sod_parses_or_raises(position: int, value: int) -> None:
    sod = bytearray(_SOD)
    sod[position % len(sod)] = value
    with contextlib.suppress(*TYPED, NotSupportedError):
        parse_sod(bytes(sod))


@FAST
@given(st.binary(max_size=200))
def test_sod_parser_is_total(data: bytes) -> None:
    for candidate in (data, tlv.encode(0x77, data)):
        with contextlib.suppress(*TYPED, NotSupportedError):
            parse_sod(candidate)


_SOD = EmulatedEmrtd(sample_cccd()).issued.files[0x011D]


# -- QR -------------------------------------------------------------------------------------------


def test_cccd_qr() -> None:
    qr = parse_cccd_qr("001199012345|012345678|Trần Thị Thử Nghiệm|15031999|Nữ|Số 1 Đường Kiểm Thử|10012024")
    assert qr.id_number == "001199012345"
    assert qr.old_id_number == "012345678"
    assert qr.date_of_birth == dt.date(1999, 3, 15)
    assert qr.sex == "F"
    assert qr.date_of_issue == dt.date(2024, 1, 10)
    assert "redacted" in repr(qr)
    extra = parse_cccd_qr("001199012345||Tên|15031999|Nam|Địa chỉ|10012024|extra|fields".encode())
    assert extra.old_id_number == ""
    assert extra.sex == "M"
    for bad in (
        "",
        "1|2|3",
        "00119901234|x|N|15031999|Nam|A|10012024",
        "001199012345|x|N|15031999|Nam|A|10012024",
        "001199012345||N|31021999|Nam|A|10012024",
        "001199012345||N|1503199|Nam|A|10012024",
        "001199012345||N|15031999|Nam|A|10012024".encode("utf-16"),
    ):
        with pytest.raises(DataFormatError):
            parse_cccd_qr(bad)


@FAST
@given(st.one_of(st.text(max_size=200), st.binary(max_size=200)))
def test_qr_parser_is_total(payload: str | bytes) -> None:
    with contextlib.suppress(DataFormatError):
        parse_cccd_qr(payload)


def _explicit_spki(curve_name: str, algorithm: str) -> bytes:
    """An EC public key with explicit domain parameters, as many DG14s carry."""
    from agent.drivers.idcard.curves import curve_by_name
    from agent.drivers.idcard.security_infos import ID_PRIME_FIELD, encode_oid

    c = curve_by_name(curve_name)
    size = c.field_size

    def integer(v: int) -> bytes:
        return tlv.encode(0x02, v.to_bytes(v.bit_length() // 8 + 1, "big"))

    params = tlv.encode(
        0x30,
        integer(1)
        + tlv.encode(0x30, tlv.encode(0x06, encode_oid(ID_PRIME_FIELD)) + integer(c.p))
        + tlv.encode(0x30, tlv.encode(0x04, c.a.to_bytes(size, "big")) + tlv.encode(0x04, c.b.to_bytes(size, "big")))
        + tlv.encode(0x04, c.encode_point(c.generator))
        + integer(c.n)
        + integer(c.h),
    )
    point = c.multiply(12345, c.generator)
    alg = tlv.encode(0x30, tlv.encode(0x06, encode_oid(algorithm)) + params)
    return tlv.encode(0x30, alg + tlv.encode(0x03, b"\x00" + c.encode_point(point)))


@pytest.mark.parametrize("curve_name", ["brainpoolP256r1", "secp256r1", "brainpoolP320r1"])
def test_dg14_chip_key_with_explicit_parameters(curve_name: str) -> None:
    from agent.drivers.idcard.security_infos import ID_PK_ECDH, encode_oid, parse_ec_spki

    spki = _explicit_spki(curve_name, ID_PK_ECDH)
    curve, point = parse_ec_spki(spki)
    assert curve.name == curve_name
    assert point == curve.multiply(12345, curve.generator)
    infos = parse_security_infos(tlv.encode(0x31, tlv.encode(0x30, tlv.encode(0x06, encode_oid(ID_PK_ECDH)) + spki)))
    assert infos.chip_auth_keys[0].curve.name == curve_name


@FAST
@given(st.integers(0, 400), st.integers(0, 255))
def test_mutated_explicit_spki_parses_or_raises(position: int, value: int) -> None:
    from agent.drivers.idcard.security_infos import ID_PK_ECDH, parse_ec_spki

    spki = bytearray(_explicit_spki("brainpoolP256r1", ID_PK_ECDH))
    spki[position % len(spki)] = value
    with contextlib.suppress(*TYPED):
        parse_ec_spki(bytes(spki))


def test_certificate_keys_with_explicit_parameters_load() -> None:
    from cryptography.hazmat.primitives.asymmetric import ec

    from agent.drivers.idcard.curves import curve_by_name
    from agent.drivers.idcard.security_infos import ID_EC_PUBLIC_KEY
    from agent.drivers.idcard.signatures import load_public_key

    key = load_public_key(_explicit_spki("brainpoolP256r1", ID_EC_PUBLIC_KEY))
    assert isinstance(key, ec.EllipticCurvePublicKey)
    c = curve_by_name("brainpoolP256r1")
    assert (key.public_numbers().x, key.public_numbers().y) == c.multiply(12345, c.generator)
    with pytest.raises(DataFormatError):
        load_public_key(_explicit_spki("brainpoolP320r1", ID_EC_PUBLIC_KEY))
