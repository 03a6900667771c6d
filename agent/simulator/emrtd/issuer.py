"""Personalisation of an emulated card: builds EF.COM, the data groups, EF.CardAccess and a
signed EF.SOD from a profile, applying the issuance-time faults (bad DG hash, unknown CSCA,
expired DS, mismatched AA/CA keys, truncated file)."""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass, field

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from agent.domain.idcard import MrzKey
from agent.drivers.idcard import tlv
from agent.drivers.idcard.curves import Curve, curve_for_crypto
from agent.drivers.idcard.dg13 import build_dg13
from agent.drivers.idcard.face import build_dg2
from agent.drivers.idcard.lds import DG_TAGS, build_com, build_dg1
from agent.drivers.idcard.mrz import parse as parse_mrz
from agent.drivers.idcard.security_infos import ID_AA, ec_spki, encode_oid
from agent.simulator.emrtd.pki import TestPki, build_pki, build_sod
from agent.simulator.emrtd.profiles import CA_ECDH, CIPHER_ARC, CardProfile, sample_face

FID_CARD_ACCESS = 0x011C
FID_COM = 0x011E
FID_SOD = 0x011D
ECDSA_SHA256 = "1.2.840.10045.4.3.2"


@dataclass(frozen=True)
class CardFaults:
    """Faults an emulated card injects.

    Issuance: ``bad_dg_hash`` (the SOD hash of that DG is wrong), ``unknown_csca`` (the DS
    comes from a CSCA nobody trusts), ``ds_expired``, ``aa_wrong_key`` / ``ca_wrong_key``
    (the chip's private key does not match DG15 / DG14), ``truncate_dg`` (the file is cut
    short of its length header).
    Runtime: ``wrong_sw`` maps an INS (e.g. 0xB0) to a status word returned instead;
    ``bad_mac`` corrupts the MAC of protected READ BINARY answers; ``max_wrong_key_attempts``
    blocks the card (6983) after that many failed BAC/PACE attempts; ``no_sfi`` refuses
    READ BINARY by short EF identifier (6A86), so files must be SELECTed by FID;
    ``broken_pace`` offers PACE in EF.CardAccess but fails GENERAL AUTHENTICATE (6F00).
    """

    bad_dg_hash: int | None = None
    unknown_csca: bool = False
    ds_expired: bool = False
    aa_wrong_key: bool = False
    ca_wrong_key: bool = False
    truncate_dg: int | None = None
    wrong_sw: dict[int, int] = field(default_factory=dict)
    bad_mac: bool = False
    max_wrong_key_attempts: int | None = None
    no_sfi: bool = False
    broken_pace: bool = False


@dataclass(frozen=True)
class IssuedCard:
    profile: CardProfile
    files: dict[int, bytes]  # FID -> content
    mrz_key: MrzKey
    aa_key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | None
    ca_key: ec.EllipticCurvePrivateKey | None
    ca_curve: Curve | None
    pki: TestPki

    def __repr__(self) -> str:
        return f"IssuedCard({self.profile.label})"


@functools.lru_cache(maxsize=4)
def _rsa_key(label: str) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(65537, 1024)  # noqa: S505 - typical AA key size of issued cards


@functools.lru_cache(maxsize=4)
def _ec_key(label: str) -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.BrainpoolP256R1())


def _card_access(profile: CardProfile) -> bytes | None:
    if not profile.pace:
        return None
    infos = b"".join(
        tlv.encode(0x30, tlv.encode(0x06, encode_oid(offer.oid)) + tlv.encode(0x02, b"\x02")
                   + tlv.encode(0x02, bytes([offer.parameter_id])))
        for offer in profile.pace)
    return tlv.encode(0x31, infos)


def _dg14(ca_public: ec.EllipticCurvePublicKey, cipher: str, aa_ec: bool) -> bytes:
    curve = curve_for_crypto(ca_public.curve)
    numbers = ca_public.public_numbers()
    ca_oid = f"{CA_ECDH}.{CIPHER_ARC[cipher]}"
    version = b"\x01" if cipher == "3DES" else b"\x02"
    infos = tlv.encode(0x30, tlv.encode(0x06, encode_oid(ca_oid)) + tlv.encode(0x02, version))
    infos += tlv.encode(0x30, tlv.encode(0x06, encode_oid("0.4.0.127.0.7.2.2.1.2"))
                        + ec_spki(curve, (numbers.x, numbers.y)))
    if aa_ec:
        infos += tlv.encode(0x30, tlv.encode(0x06, encode_oid(ID_AA)) + tlv.encode(0x02, b"\x01")
                            + tlv.encode(0x06, encode_oid(ECDSA_SHA256)))
    return tlv.encode(DG_TAGS[14], tlv.encode(0x31, infos))


def issue(profile: CardProfile, faults: CardFaults | None = None) -> IssuedCard:
    faults = faults or CardFaults()
    mrz = parse_mrz(profile.mrz)
    groups: dict[int, bytes] = {1: build_dg1(profile.mrz.replace("\n", ""))}
    face, width, height = sample_face(profile.face_format)
    groups[2] = build_dg2(face, width, height, jpeg2000=profile.face_format == "jp2")
    if profile.dg13 is not None:
        groups[13] = build_dg13(dict(profile.dg13), nested_parents=profile.nested_parents,
                                header=profile.dg13_header)

    aa_key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | None = None
    if profile.active_auth == "rsa":
        aa_key = _rsa_key("aa")
    elif profile.active_auth == "ec":
        aa_key = _ec_key("aa")
    if aa_key is not None:
        published = aa_key.public_key()
        if faults.aa_wrong_key:
            other = _rsa_key("other") if isinstance(aa_key, rsa.RSAPrivateKey) else _ec_key("other")
            published = other.public_key()
        spki = published.public_bytes(serialization.Encoding.DER,
                                      serialization.PublicFormat.SubjectPublicKeyInfo)
        groups[15] = tlv.encode(DG_TAGS[15], spki)

    ca_key: ec.EllipticCurvePrivateKey | None = None
    if profile.chip_auth is not None:
        ca_key = _ec_key("ca")
        published_ca = (_ec_key("other-ca") if faults.ca_wrong_key else ca_key).public_key()
        groups[14] = _dg14(published_ca, profile.chip_auth, profile.active_auth == "ec")
    groups.update(profile.extra_data_groups)

    hashes = {n: hashlib.sha256(content).digest() for n, content in groups.items()}
    if faults.bad_dg_hash is not None and faults.bad_dg_hash in hashes:
        hashes[faults.bad_dg_hash] = hashlib.sha256(groups[faults.bad_dg_hash] + b"tampered").digest()
    pki = build_pki(profile.country, profile.pki_kind, ds_expired=faults.ds_expired,
                    label="rogue" if faults.unknown_csca else "")

    files = {FID_COM: build_com(sorted(groups)), FID_SOD: build_sod(pki, hashes)}
    for number, content in groups.items():
        if faults.truncate_dg == number:
            content = content[:max(8, len(content) // 2)]
        files[0x0100 + number] = content
    card_access = _card_access(profile)
    if card_access is not None:
        files[FID_CARD_ACCESS] = card_access
    return IssuedCard(profile, files, mrz.key(), aa_key, ca_key,
                      curve_for_crypto(ca_key.curve) if ca_key else None, pki)
