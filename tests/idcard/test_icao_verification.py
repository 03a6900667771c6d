"""Every verdict of passive, active and chip authentication, and the injected card faults."""

from __future__ import annotations

import datetime as dt

import pytest

from agent.domain.idcard import FieldSource, ReadOptions, Verdict
from agent.drivers.idcard.session import read_document
from agent.drivers.idcard.trust_store import TrustStore
from agent.drivers.idcard.verification import passive_authentication
from agent.errors import DataFormatError, DeviceProtocolError
from agent.simulator.emrtd import CardFaults, EmulatedEmrtd, EmulatedTransport, sample_cccd, sample_passport
from agent.simulator.emrtd.pki import build_pki
from tests.idcard.icao_support import read_card


async def test_passive_valid_with_the_csca_trusted() -> None:
    result, _, _ = await read_card(sample_cccd())
    assert result.verification.passive is Verdict.VALID


async def test_passive_unknown_issuer_without_a_trust_store() -> None:
    result, _, _ = await read_card(sample_cccd(), trusted=False)
    assert result.verification.passive is Verdict.UNKNOWN_ISSUER


async def test_passive_unknown_issuer_for_a_csca_not_in_the_store() -> None:
    result, _, _ = await read_card(sample_cccd(), faults=CardFaults(unknown_csca=True))
    assert result.verification.passive is Verdict.UNKNOWN_ISSUER
    assert any("no CSCA" in d for d in result.verification.details)
    # the note names the CSCA to install (a state's certificate: no personal data)
    (note,) = [d for d in result.verification.details if "no CSCA" in d]
    assert note.startswith("passive: no CSCA in the trust store for the DS issuer CN="), note
    assert note.endswith(",C=VN"), note


@pytest.mark.parametrize("group", [1, 2, 13, 15])
async def test_passive_invalid_for_a_bad_data_group_hash(group: int) -> None:
    result, _, _ = await read_card(sample_cccd(), faults=CardFaults(bad_dg_hash=group))
    assert result.verification.passive is Verdict.INVALID
    assert f"passive: DG{group} hash mismatch" in result.verification.details
    assert result.personal.id_number == "001199012345"  # an invalid card is still read and reported


async def test_passive_invalid_for_an_expired_ds_certificate() -> None:
    result, _, _ = await read_card(sample_cccd(), faults=CardFaults(ds_expired=True))
    assert result.verification.passive is Verdict.INVALID


async def test_passive_with_rsa_document_signer() -> None:
    result, _, _ = await read_card(sample_passport(pki_kind="rsa"))
    assert result.verification.passive is Verdict.VALID


def test_passive_invalid_when_the_sod_signature_is_broken() -> None:
    card = EmulatedEmrtd(sample_cccd())
    sod = bytearray(card.issued.files[0x011D])
    sod[-5] ^= 0x01  # inside the signature value at the end of the SignerInfo
    groups = {1: card.issued.files[0x0101]}
    trust = TrustStore()
    trust.add_certificate(card.issued.pki.csca_der)
    result = passive_authentication(bytes(sod), groups, trust)
    assert result.verdict is Verdict.INVALID
    assert "EF.SOD signature invalid" in result.details


def test_passive_not_supported_for_an_unknown_hash_algorithm() -> None:
    import hashlib

    card = EmulatedEmrtd(sample_cccd())
    dg1 = card.issued.files[0x0101]
    from agent.simulator.emrtd.pki import build_sod

    sod = build_sod(card.issued.pki, {1: hashlib.sha3_256(dg1).digest()}, hash_name="sha3_256")
    trust = TrustStore()
    trust.add_certificate(card.issued.pki.csca_der)
    result = passive_authentication(sod, {1: dg1}, trust)
    assert result.verdict is Verdict.NOT_SUPPORTED


def test_passive_invalid_for_missing_or_malformed_sod() -> None:
    assert passive_authentication(None, {}, None).verdict is Verdict.INVALID
    assert passive_authentication(b"\x77\x03\x30\x01\x00", {}, None).details == ["EF.SOD malformed"]


def test_passive_invalid_when_a_read_group_is_not_in_the_sod() -> None:
    card = EmulatedEmrtd(sample_cccd())
    result = passive_authentication(card.issued.files[0x011D], {3: b"\x63\x00"}, None)
    assert result.verdict is Verdict.INVALID


def test_passive_invalid_when_the_csca_expired() -> None:
    card = EmulatedEmrtd(sample_cccd())
    trust = TrustStore()
    trust.add_certificate(card.issued.pki.csca_der)
    late = dt.datetime(2060, 1, 1, tzinfo=dt.UTC)
    assert passive_authentication(card.issued.files[0x011D], {}, trust, late).verdict is Verdict.INVALID


def test_passive_invalid_when_the_ds_is_not_signed_by_the_named_csca() -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    card = EmulatedEmrtd(sample_cccd(), faults=CardFaults(unknown_csca=True))
    rogue = build_pki("VN", "ec", label="rogue").csca_cert
    ski = rogue.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    other_key = ec.generate_private_key(ec.SECP256R1())
    impostor = (  # same name and key identifier as the real issuer, another key
        x509.CertificateBuilder()
        .subject_name(rogue.subject)
        .issuer_name(rogue.subject)
        .public_key(other_key.public_key())
        .serial_number(7)
        .not_valid_before(dt.datetime(2020, 1, 1, tzinfo=dt.UTC))
        .not_valid_after(dt.datetime(2050, 1, 1, tzinfo=dt.UTC))
        .add_extension(ski, critical=False)
        .sign(other_key, hashes.SHA256())
    )
    trust = TrustStore()
    trust.add_certificate(impostor.public_bytes(serialization.Encoding.PEM))
    result = passive_authentication(card.issued.files[0x011D], {}, trust)
    assert result.verdict is Verdict.INVALID
    assert result.details == ["DS certificate signature does not verify with the CSCA"]


@pytest.mark.parametrize("kind", ["rsa", "ec"])
async def test_active_valid_and_invalid(kind: str) -> None:
    good, _, _ = await read_card(sample_passport(active_auth=kind))
    assert good.verification.active is Verdict.VALID
    bad, _, _ = await read_card(sample_passport(active_auth=kind), faults=CardFaults(aa_wrong_key=True))
    assert bad.verification.active is Verdict.INVALID


async def test_active_not_supported_without_dg15() -> None:
    result, _, _ = await read_card(sample_passport(active_auth=None))
    assert result.verification.active is Verdict.NOT_SUPPORTED
    assert 15 not in result.data_groups_read


async def test_chip_invalid_when_the_chip_lacks_the_dg14_key() -> None:
    result, _, _ = await read_card(sample_passport(), faults=CardFaults(ca_wrong_key=True))
    assert result.verification.chip is Verdict.INVALID
    assert result.verification.active is Verdict.VALID  # AA ran before CA broke the channel


async def test_chip_not_supported_without_dg14_or_when_not_requested() -> None:
    result, _, _ = await read_card(sample_cccd())
    assert result.verification.chip is Verdict.NOT_SUPPORTED
    result, _, _ = await read_card(sample_passport(), options=ReadOptions(chip_authentication=False))
    assert result.verification.chip is Verdict.NOT_SUPPORTED


async def test_bad_mac_from_the_card_is_a_protocol_error() -> None:
    with pytest.raises(DeviceProtocolError):
        await read_card(sample_cccd(), faults=CardFaults(bad_mac=True))


async def test_wrong_status_word_on_read_is_a_protocol_error() -> None:
    with pytest.raises(DeviceProtocolError):
        await read_card(sample_cccd(), faults=CardFaults(wrong_sw={0xB0: 0x6F00}))


@pytest.mark.parametrize("group", [1, 2, 13])
async def test_truncated_file_is_a_data_format_error(group: int) -> None:
    with pytest.raises(DataFormatError):
        await read_card(sample_cccd(), faults=CardFaults(truncate_dg=group))


async def test_refused_internal_authenticate_is_invalid_active() -> None:
    result, _, _ = await read_card(sample_cccd(), faults=CardFaults(wrong_sw={0x88: 0x6985}))
    assert result.verification.active is Verdict.INVALID


async def test_a_card_answering_garbage_never_crashes_or_hangs() -> None:
    class GarbageTransport:
        extended_length = True

        def __init__(self) -> None:
            self.calls = 0

        async def transmit(self, apdu: bytes) -> bytes:
            self.calls += 1
            return bytes([self.calls % 256]) * (self.calls % 7) + b"\x90\x00"

    card = EmulatedEmrtd(sample_cccd())
    with pytest.raises((DeviceProtocolError, DataFormatError)):
        await read_document(GarbageTransport(), card.issued.mrz_key, ReadOptions(), None)


async def test_plain_emulator_transport_round_trip() -> None:
    card = EmulatedEmrtd(sample_cccd())
    transport = EmulatedTransport(card)
    # EF.CardAccess is readable without access control; DG1 is not
    assert (await transport.transmit(bytes.fromhex("00B09C0000")))[-2:] == b"\x90\x00"
    assert (await transport.transmit(bytes.fromhex("00A4040C07A0000002471001")))[-2:] == b"\x90\x00"
    assert (await transport.transmit(bytes.fromhex("00B0810000")))[-2:] == b"\x69\x82"
    assert card.transmit(b"\x00") == b"\x67\x00"
    assert card.transmit(bytes.fromhex("00CA000000"))[-2:] == b"\x6d\x00"


async def test_card_with_a_small_io_buffer_is_read_in_pieces() -> None:
    """A card that answers at most 100 bytes per READ BINARY, whatever Le says."""

    class SmallBufferCard(EmulatedEmrtd):
        def _slice(self, content: bytes, offset: int, le: int | None) -> tuple[bytes, int]:
            data, sw = super()._slice(content, offset, le)
            return data[:100], sw

    card = SmallBufferCard(sample_cccd())
    from tests.idcard.icao_support import trust_for

    result = await read_document(EmulatedTransport(card), card.issued.mrz_key, ReadOptions(), trust_for(card))
    assert result.verification.passive is Verdict.VALID
    assert result.apdu_count > 200


async def test_card_trickling_single_bytes_is_cut_off() -> None:
    class TricklingCard(EmulatedEmrtd):
        def _slice(self, content: bytes, offset: int, le: int | None) -> tuple[bytes, int]:
            data, sw = super()._slice(content, offset, le)
            return data[:1] if offset >= 0xDF else data, sw

    card = TricklingCard(sample_cccd())
    with pytest.raises(DeviceProtocolError):
        await read_document(EmulatedTransport(card), card.issued.mrz_key, ReadOptions(), None)


async def test_unparsable_dg13_and_face_are_reported_not_fatal() -> None:
    from agent.drivers.idcard import tlv

    garbage13 = tlv.encode(0x6D, tlv.encode(0x30, tlv.encode(0x02, b"\x02") + tlv.encode(0x0C, b"\xff\xfe")))
    garbage2 = tlv.encode(0x75, tlv.encode(0x7F61, tlv.encode(0x02, b"\x01")))
    result, _, _ = await read_card(sample_cccd(extra_data_groups={13: garbage13, 2: garbage2}))
    assert result.face is None
    assert result.personal.document_number == "199012345"
    assert result.personal.full_name == "TRAN THI THU NGHIEM"  # from the MRZ
    assert result.personal.sources["full_name"] is FieldSource.DG1
    assert result.verification.data is Verdict.INVALID
    assert "data: DG13 field 2 (full name) holds text that does not decode" in result.verification.details
    assert "data: DG13 holds no name; the name comes from DG1" in result.verification.details
    assert "DG2 face could not be parsed" in result.verification.details
    assert result.verification.passive is Verdict.VALID  # the issuer signed these very bytes


async def test_dg13_without_pairs_is_a_data_verdict_not_a_quiet_fallback() -> None:
    from agent.drivers.idcard import tlv

    no_pairs = tlv.encode(0x6D, tlv.encode(0x30, tlv.encode(0x02, b"\x01") + tlv.encode(0x06, b"\x88\x37")))
    result, _, _ = await read_card(sample_cccd(extra_data_groups={13: no_pairs}))
    assert result.personal.full_name == "TRAN THI THU NGHIEM"
    assert result.personal.sources["full_name"] is FieldSource.DG1
    assert result.personal.sources["place_of_residence"] is FieldSource.MISSING
    assert result.verification.data is Verdict.INVALID
    assert ("data: DG13 could not be parsed (DG13 holds no (index, value) pairs); fields come from DG1"
            in result.verification.details)
    assert result.verification.passive is Verdict.VALID


async def test_chip_authentication_runs_before_the_personal_data_is_read() -> None:
    card = EmulatedEmrtd(sample_passport())
    transport = EmulatedTransport(card)
    log = transport.record()
    from tests.idcard.icao_support import trust_for

    result = await read_document(transport, card.issued.mrz_key, ReadOptions(), trust_for(card))
    assert result.verification.chip is Verdict.VALID
    mse_ca = next(i for i, (cmd, _) in enumerate(log) if cmd[1] == 0x22 and cmd[2:4] == b"\x41\xa4")
    dg1_read = next(i for i, (cmd, _) in enumerate(log) if cmd[1] == 0xB0 and cmd[2] == 0x81)
    assert mse_ca < dg1_read


async def test_failed_chip_authentication_reopens_pace_and_still_reads() -> None:
    result, card, _ = await read_card(sample_cccd(chip_auth="AES-128"), faults=CardFaults(ca_wrong_key=True))
    assert result.access_protocol == "PACE"
    assert result.verification.chip is Verdict.INVALID
    assert result.verification.passive is Verdict.VALID
    assert result.verification.active is Verdict.VALID
    assert result.personal.id_number == "001199012345"
    assert card.wrong_key_attempts == 0


def test_passive_valid_with_an_rsassa_pss_signed_sod() -> None:
    import hashlib

    from agent.simulator.emrtd.pki import build_sod

    pki = build_pki("UT", "rsa")
    dg1 = EmulatedEmrtd(sample_passport()).issued.files[0x0101]
    sod = build_sod(pki, {1: hashlib.sha256(dg1).digest()}, pss=True)
    trust = TrustStore()
    trust.add_certificate(pki.csca_der)
    assert passive_authentication(sod, {1: dg1}, trust).verdict is Verdict.VALID
    broken = bytearray(sod)
    broken[-3] ^= 0x40
    assert passive_authentication(bytes(broken), {1: dg1}, trust).verdict is Verdict.INVALID
