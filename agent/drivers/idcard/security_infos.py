"""SecurityInfos (ICAO 9303 Part 11, 9.2): PACEInfo in EF.CardAccess, chip authentication
and active authentication infos in DG14, and EC/RSA public keys with named or explicit
domain parameters."""

from __future__ import annotations

from dataclasses import dataclass

from asn1crypto import core

from agent.drivers.idcard import tlv
from agent.drivers.idcard.cipher_suite import AES128, AES192, AES256, DES3, CipherSuite
from agent.drivers.idcard.curves import STANDARD_CURVES, Curve, Point, curve_by_name
from agent.errors import DataFormatError, DeviceProtocolError

BSI_DE = "0.4.0.127.0.7"
ID_PACE = BSI_DE + ".2.2.4"
ID_CA = BSI_DE + ".2.2.3"
ID_PK_ECDH = BSI_DE + ".2.2.1.2"
ID_PK_DH = BSI_DE + ".2.2.1.1"
ID_AA = "2.23.136.1.1.5"
ID_EC_PUBLIC_KEY = "1.2.840.10045.2.1"
ID_PRIME_FIELD = "1.2.840.10045.1.1"

#: last arc of a PACE / CA protocol OID -> cipher suite
_SUITES = {1: DES3, 2: AES128, 3: AES192, 4: AES256}

SUPPORTED_PARAMETER_IDS = frozenset(c.parameter_id for c in STANDARD_CURVES)

PACE_MAPPINGS = {1: "DH-GM", 2: "ECDH-GM", 3: "DH-IM", 4: "ECDH-IM", 6: "ECDH-CAM"}

NAMED_CURVE_OIDS = {
    "1.2.840.10045.3.1.1": "secp192r1", "1.3.132.0.33": "secp224r1", "1.2.840.10045.3.1.7": "secp256r1",
    "1.3.132.0.34": "secp384r1", "1.3.132.0.35": "secp521r1",
    "1.3.36.3.3.2.8.1.1.3": "brainpoolP192r1", "1.3.36.3.3.2.8.1.1.5": "brainpoolP224r1",
    "1.3.36.3.3.2.8.1.1.7": "brainpoolP256r1", "1.3.36.3.3.2.8.1.1.9": "brainpoolP320r1",
    "1.3.36.3.3.2.8.1.1.11": "brainpoolP384r1", "1.3.36.3.3.2.8.1.1.13": "brainpoolP512r1",
}
CURVE_OIDS = {name: oid for oid, name in NAMED_CURVE_OIDS.items()}


def decode_oid(value: bytes) -> str:
    try:
        return str(core.ObjectIdentifier.load(tlv.encode(0x06, value)).dotted)
    except (ValueError, TypeError) as exc:
        raise DataFormatError("malformed object identifier") from exc


def encode_oid(dotted: str) -> bytes:
    """DER content octets (no tag/length) of an OID."""
    return bytes(core.ObjectIdentifier(dotted).contents)


def decode_int(item: tlv.Tlv) -> int:
    if item.tag != 0x02 or not item.value or len(item.value) > 8:
        raise DataFormatError("expected a small INTEGER")
    return int.from_bytes(item.value, "big", signed=True)


@dataclass(frozen=True, slots=True)
class PaceInfo:
    oid: str
    version: int
    parameter_id: int | None

    @property
    def mapping(self) -> str:
        return PACE_MAPPINGS.get(int(self.oid.split(".")[-2]), "unknown")

    @property
    def suite(self) -> CipherSuite:
        return _SUITES[int(self.oid.split(".")[-1])]

    @property
    def supported(self) -> bool:
        parts = self.oid.split(".")
        return (self.mapping == "ECDH-GM" and int(parts[-1]) in _SUITES
                and self.parameter_id in SUPPORTED_PARAMETER_IDS)


@dataclass(frozen=True, slots=True)
class ChipAuthInfo:
    oid: str
    version: int
    key_id: int | None

    @property
    def suite(self) -> CipherSuite:
        return _SUITES[int(self.oid.split(".")[-1])]

    @property
    def ecdh(self) -> bool:
        return self.oid.split(".")[-2] == "2"

    @property
    def supported(self) -> bool:
        return self.ecdh and int(self.oid.split(".")[-1]) in _SUITES


@dataclass(frozen=True, slots=True)
class ChipAuthPublicKey:
    curve: Curve
    point: Point
    key_id: int | None


@dataclass(frozen=True, slots=True)
class SecurityInfos:
    pace: tuple[PaceInfo, ...] = ()
    chip_auth: tuple[ChipAuthInfo, ...] = ()
    chip_auth_keys: tuple[ChipAuthPublicKey, ...] = ()
    active_auth_signature_oid: str | None = None


def parse_security_infos(data: bytes) -> SecurityInfos:
    """Parse a SecurityInfos SET (EF.CardAccess content, or DG14's value). Unknown infos
    are skipped; malformed ones raise DataFormatError."""
    try:
        return _parse_security_infos(data)
    except IndexError as exc:  # a SEQUENCE with fewer parts than its type has
        raise DataFormatError("SecurityInfo is missing parts") from exc


def _parse_security_infos(data: bytes) -> SecurityInfos:
    outer = tlv.parse_single(data, 0x31)
    pace: list[PaceInfo] = []
    chip: list[ChipAuthInfo] = []
    keys: list[ChipAuthPublicKey] = []
    aa_oid: str | None = None
    for info in outer.children():
        if info.tag != 0x30:
            raise DataFormatError("SecurityInfo is not a SEQUENCE")
        parts = info.children()
        if len(parts) < 2 or parts[0].tag != 0x06:
            raise DataFormatError("SecurityInfo without protocol OID and data")
        oid = decode_oid(parts[0].value)
        if oid.startswith(ID_PACE + ".") and oid.count(".") == ID_PACE.count(".") + 2:
            param = decode_int(parts[2]) if len(parts) > 2 else None
            pace.append(PaceInfo(oid, decode_int(parts[1]), param))
        elif oid.startswith(ID_CA + ".") and oid.count(".") == ID_CA.count(".") + 2:
            key_id = decode_int(parts[2]) if len(parts) > 2 else None
            chip.append(ChipAuthInfo(oid, decode_int(parts[1]), key_id))
        elif oid == ID_PK_ECDH:
            curve, point = parse_ec_spki(tlv.encode(parts[1].tag, parts[1].value))
            key_id = decode_int(parts[2]) if len(parts) > 2 else None
            keys.append(ChipAuthPublicKey(curve, point, key_id))
        elif oid == ID_AA and len(parts) > 2 and parts[2].tag == 0x06:
            aa_oid = decode_oid(parts[2].value)
    return SecurityInfos(tuple(pace), tuple(chip), tuple(keys), aa_oid)


def _explicit_curve(params: tlv.Tlv) -> Curve:
    items = params.children()
    if len(items) < 5:
        raise DataFormatError("explicit EC parameters incomplete")
    field = items[1].children()
    if decode_oid(field[0].value) != ID_PRIME_FIELD:
        raise DataFormatError("only prime-field EC parameters are supported")
    p = int.from_bytes(field[1].value, "big")
    curve_items = items[2].children()
    a = int.from_bytes(curve_items[0].value, "big")
    b = int.from_bytes(curve_items[1].value, "big")
    base = items[3].value
    n = int.from_bytes(items[4].value, "big")
    for c in STANDARD_CURVES:
        if (c.p, c.a % c.p, c.b, c.n) == (p, a % p, b, n) and base[1:1 + c.field_size] == c.gx.to_bytes(
                c.field_size, "big"):
            return c
    raise DataFormatError("explicit EC parameters match no standardized curve")


def parse_ec_spki(der: bytes) -> tuple[Curve, Point]:
    """An EC SubjectPublicKeyInfo (id-ecPublicKey or id-PK-ECDH; named or explicit params)."""
    try:
        return _parse_ec_spki(der)
    except IndexError as exc:
        raise DataFormatError("EC public key parameters are incomplete") from exc


def _parse_ec_spki(der: bytes) -> tuple[Curve, Point]:
    spki = tlv.parse_single(der, 0x30).children()
    if len(spki) != 2:
        raise DataFormatError("SubjectPublicKeyInfo must have two parts")
    alg = spki[0].children()
    if not alg or alg[0].tag != 0x06 or len(alg) < 2:
        raise DataFormatError("EC key without algorithm parameters")
    if decode_oid(alg[0].value) not in (ID_EC_PUBLIC_KEY, ID_PK_ECDH):
        raise DataFormatError("public key is not an EC key")
    params = alg[1]
    if params.tag == 0x06:
        name = NAMED_CURVE_OIDS.get(decode_oid(params.value))
        if name is None:
            raise DataFormatError("EC key on an unsupported named curve")
        curve = curve_by_name(name)
    elif params.tag == 0x30:
        curve = _explicit_curve(params)
    else:
        raise DataFormatError("EC key parameters are neither named nor explicit")
    bits = spki[1]
    if bits.tag != 0x03 or not bits.value or bits.value[0] != 0:
        raise DataFormatError("EC public key BIT STRING malformed")
    try:
        point = curve.decode_point(bits.value[1:])
    except DeviceProtocolError as exc:
        raise DataFormatError("EC public key point invalid") from exc
    return curve, point


def ec_spki(curve: Curve, point: Point, algorithm: str = ID_EC_PUBLIC_KEY) -> bytes:
    """Encode an EC SubjectPublicKeyInfo with a named curve."""
    alg = tlv.encode(0x30, tlv.encode(0x06, encode_oid(algorithm))
                     + tlv.encode(0x06, encode_oid(CURVE_OIDS[curve.name])))
    return tlv.encode(0x30, alg + tlv.encode(0x03, b"\x00" + curve.encode_point(point)))
