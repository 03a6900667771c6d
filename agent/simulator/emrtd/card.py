"""The emulated eMRTD chip: an ISO 7816-4 APDU state machine over an issued card.

Synchronous and free of I/O: ``transmit(apdu) -> response``. It speaks BAC, PACE-ECDH-GM,
secure messaging (3DES and AES), SELECT / READ BINARY (short EF ids, offsets, odd INS,
short and extended length), INTERNAL AUTHENTICATE (AA: RSA ISO 9796-2 scheme 1 or ECDSA)
and chip authentication (MSE:Set KAT for 3DES, MSE:Set AT + GENERAL AUTHENTICATE for AES).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from agent.domain.idcard import CanKey
from agent.drivers.idcard import tlv
from agent.drivers.idcard.apdu import (
    SW_AUTH_BLOCKED,
    SW_AUTH_FAILED,
    SW_CONDITIONS_NOT_SATISFIED,
    SW_END_OF_FILE,
    SW_FILE_NOT_FOUND,
    SW_INS_NOT_SUPPORTED,
    SW_OK,
    SW_SECURITY_NOT_SATISFIED,
    SW_SM_OBJECTS_INCORRECT,
    SW_WRONG_DATA,
    SW_WRONG_LENGTH,
    SW_WRONG_P1P2,
    CommandApdu,
    parse_command,
)
from agent.drivers.idcard.bac import derive_keys, session_from_exchange
from agent.drivers.idcard.cipher_suite import AES128, AES192, AES256, DES3, KDF_ENC, KDF_MAC, CipherSuite, pad
from agent.drivers.idcard.curves import Curve, Point, curve_for_parameter_id
from agent.drivers.idcard.mrz import bac_key_seed
from agent.drivers.idcard.pace import (
    PASSWORD_CAN,
    PASSWORD_MRZ,
    PacePassword,
    map_generator,
    password_for,
    public_key_object,
)
from agent.drivers.idcard.reading import EMRTD_AID
from agent.drivers.idcard.secure_messaging import SecureMessaging
from agent.drivers.idcard.security_infos import PaceInfo, decode_oid
from agent.errors import DataFormatError, DeviceProtocolError
from agent.simulator.emrtd.issuer import FID_CARD_ACCESS, CardFaults, IssuedCard, issue
from agent.simulator.emrtd.profiles import CIPHER_ARC, CardProfile, sample_cccd

# ATR: T=1, historical bytes naming the emulator; TCK appended at build time.
_ATR_BODY = bytes.fromhex("3B8880018065") + b"EMRTD" + b"\x00"


def _atr() -> bytes:
    tck = 0
    for b in _ATR_BODY[1:]:
        tck ^= b
    return _ATR_BODY + bytes([tck])


ATR = _atr()


class _Reply(Exception):
    def __init__(self, sw: int, data: bytes = b"") -> None:
        super().__init__(f"{sw:04X}")
        self.sw = sw
        self.data = data


@dataclass
class _PaceRun:
    info: PaceInfo
    suite: CipherSuite
    curve: Curve
    password: PacePassword
    nonce: int = 0
    mapped: Point | None = None
    sk_eph: int = 0
    pk_eph: Point | None = None
    pk_eph_pcd: Point | None = None
    ks_enc: bytes = b""
    ks_mac: bytes = b""


class EmulatedEmrtd:
    """One emulated chip. ``power_on`` resets it (a new session); state persists only for
    the wrong-key counter, as on a real card."""

    def __init__(self, card: CardProfile | IssuedCard | None = None, *,
                 faults: CardFaults | None = None,
                 random_bytes: Callable[[int], bytes] | None = None) -> None:
        """``random_bytes`` replaces the chip's random source (a seeded one makes a session
        replayable: the same commands then get the same answers)."""
        self.faults = faults or CardFaults()
        self._random = random_bytes or secrets.token_bytes
        if isinstance(card, IssuedCard):
            self.issued = card
        else:
            self.issued = issue(card or sample_cccd(), self.faults)
        self.profile = self.issued.profile
        self.wrong_key_attempts = 0
        self.powered = False
        self._reset()

    def __repr__(self) -> str:
        return f"EmulatedEmrtd({self.profile.label})"

    def _reset(self) -> None:
        self._sm: SecureMessaging | None = None
        self._app_selected = False
        self._selected: int | None = None
        self._rnd_ic: bytes | None = None
        self._pace: _PaceRun | None = None
        self._pending_sm: SecureMessaging | None = None
        self._ca_oid: str | None = None

    # -- public API ----------------------------------------------------------------------------

    def power_on(self) -> bytes:
        self.powered = True
        self._reset()
        return ATR

    def power_off(self) -> None:
        self.powered = False
        self._reset()

    @property
    def blocked(self) -> bool:
        limit = self.faults.max_wrong_key_attempts
        return limit is not None and self.wrong_key_attempts >= limit

    def transmit(self, apdu: bytes) -> bytes:
        """Process one command APDU and return data + SW1 SW2."""
        if not self.powered:
            self.power_on()
        try:
            cmd, extended = parse_command(apdu)
        except DataFormatError:
            return SW_WRONG_LENGTH.to_bytes(2, "big")
        if extended and not self.profile.extended_length:
            if cmd.cla & 0x0C == 0x0C and self._sm is not None:
                try:
                    self._sm.unprotect_command(cmd)
                except DeviceProtocolError:
                    self._sm = None
                    return SW_SM_OBJECTS_INCORRECT.to_bytes(2, "big")
                return self._sm.protect_response(b"", SW_WRONG_LENGTH)
            return SW_WRONG_LENGTH.to_bytes(2, "big")
        if cmd.cla & 0x0C == 0x0C:
            return self._transmit_protected(cmd, extended)
        if self._sm is not None:
            self._sm = None  # a plain command ends the secure channel
        try:
            data, sw = self._dispatch(cmd, False)
        except _Reply as reply:
            data, sw = reply.data, reply.sw
        if self._pending_sm is not None:
            self._sm, self._pending_sm = self._pending_sm, None
        return data + sw.to_bytes(2, "big")

    def _transmit_protected(self, cmd: CommandApdu, extended: bool) -> bytes:
        sm = self._sm
        if sm is None:
            return SW_SM_OBJECTS_INCORRECT.to_bytes(2, "big")
        try:
            plain = sm.unprotect_command(cmd)
        except DeviceProtocolError:
            self._sm = None
            return SW_SM_OBJECTS_INCORRECT.to_bytes(2, "big")
        try:
            data, sw = self._dispatch(plain, True)
        except _Reply as reply:
            data, sw = reply.data, reply.sw
        answer = sm.protect_response(data, sw, plain.ins)
        if not extended and len(answer) - 2 > 256:  # does not fit a short response: 6700 instead
            sm.ssc -= 1
            answer = sm.protect_response(b"", SW_WRONG_LENGTH, plain.ins)
        if self.faults.bad_mac and plain.ins in (0xB0, 0xB1) and len(answer) > 4:
            answer = answer[:-3] + bytes([answer[-3] ^ 0x01]) + answer[-2:]
        if self._pending_sm is not None:
            self._sm, self._pending_sm = self._pending_sm, None
        return answer

    # -- dispatch ------------------------------------------------------------------------------

    def _dispatch(self, cmd: CommandApdu, protected: bool) -> tuple[bytes, int]:
        forced = self.faults.wrong_sw.get(cmd.ins)
        if forced is not None and protected:
            return b"", forced
        handlers = {
            0xA4: self._select, 0xB0: self._read_binary, 0xB1: self._read_binary_odd,
            0x84: self._get_challenge, 0x82: self._external_authenticate, 0x22: self._mse,
            0x86: self._general_authenticate, 0x88: self._internal_authenticate,
        }
        handler = handlers.get(cmd.ins)
        if handler is None:
            return b"", SW_INS_NOT_SUPPORTED
        return handler(cmd, protected)

    def _need_secure(self, protected: bool) -> None:
        if not protected:
            raise _Reply(SW_SECURITY_NOT_SATISFIED)

    # -- files ---------------------------------------------------------------------------------

    def _select(self, cmd: CommandApdu, protected: bool) -> tuple[bytes, int]:
        if cmd.p1 == 0x04:
            if cmd.data == EMRTD_AID:
                self._app_selected = True
                self._selected = None
                return b"", SW_OK
            return b"", SW_FILE_NOT_FOUND
        if cmd.p1 in (0x00, 0x02) and len(cmd.data) == 2:
            fid = int.from_bytes(cmd.data, "big")
            if fid == 0x3F00:
                self._app_selected = False
                return b"", SW_OK
            if not self._file_visible(fid):
                return b"", SW_FILE_NOT_FOUND
            self._selected = fid
            return b"", SW_OK
        return b"", SW_WRONG_P1P2

    def _file_visible(self, fid: int) -> bool:
        if fid not in self.issued.files:
            return False
        return fid == FID_CARD_ACCESS or self._app_selected

    def _file_for_read(self, protected: bool) -> bytes:
        if self._selected is None:
            raise _Reply(SW_CONDITIONS_NOT_SATISFIED)
        if self._selected != FID_CARD_ACCESS:
            self._need_secure(protected)
        return self.issued.files[self._selected]

    def _slice(self, content: bytes, offset: int, le: int | None) -> tuple[bytes, int]:
        if offset > len(content):
            return b"", SW_WRONG_P1P2
        want = le if le is not None else 256
        chunk = content[offset:offset + want]
        if len(chunk) < want and want not in (256, 65536):
            return chunk, SW_END_OF_FILE
        return chunk, SW_OK

    def _read_binary(self, cmd: CommandApdu, protected: bool) -> tuple[bytes, int]:
        if cmd.p1 & 0x80:
            if self.faults.no_sfi:
                return b"", 0x6A86
            sfi = cmd.p1 & 0x1F
            fid = 0x0100 | sfi  # eMRTD files: FID 01xx with xx the SFI (DGs, 1C, 1D, 1E)
            if not self._file_visible(fid):
                return b"", SW_FILE_NOT_FOUND
            self._selected = fid
            offset = cmd.p2
        else:
            offset = ((cmd.p1 & 0x7F) << 8) | cmd.p2
        return self._slice(self._file_for_read(protected), offset, cmd.le)

    def _read_binary_odd(self, cmd: CommandApdu, protected: bool) -> tuple[bytes, int]:
        try:
            item = tlv.parse_single(cmd.data, 0x54)
        except DataFormatError:
            return b"", SW_WRONG_DATA
        offset = int.from_bytes(item.value, "big")
        data, sw = self._slice(self._file_for_read(protected), offset, cmd.le)
        return tlv.encode(0x53, data), sw

    # -- BAC -----------------------------------------------------------------------------------

    def _scalar(self, curve: Curve) -> int:
        return int.from_bytes(self._random(curve.field_size + 8), "big") % (curve.n - 1) + 1

    def _check_not_blocked(self) -> None:
        if self.blocked:
            raise _Reply(SW_AUTH_BLOCKED)

    def _wrong_key(self) -> None:
        self.wrong_key_attempts += 1
        raise _Reply(SW_AUTH_FAILED)

    def _get_challenge(self, cmd: CommandApdu, protected: bool) -> tuple[bytes, int]:
        if not self.profile.bac:
            return b"", SW_INS_NOT_SUPPORTED
        self._rnd_ic = self._random(8)
        return self._rnd_ic, SW_OK

    def _external_authenticate(self, cmd: CommandApdu, protected: bool) -> tuple[bytes, int]:
        self._check_not_blocked()
        rnd_ic, self._rnd_ic = self._rnd_ic, None
        if rnd_ic is None or len(cmd.data) != 40:
            return b"", SW_CONDITIONS_NOT_SATISFIED
        keys = derive_keys(bac_key_seed(self.issued.mrz_key))
        e_ifd, m_ifd = cmd.data[:32], cmd.data[32:]
        if not hmac.compare_digest(DES3.mac(keys.k_mac, pad(e_ifd, 8)), m_ifd):
            self._wrong_key()
        plain = DES3.decrypt(keys.k_enc, e_ifd)
        if plain[8:16] != rnd_ic:
            self._wrong_key()
        rnd_ifd, k_ifd = plain[:8], plain[16:32]
        k_ic = self._random(16)
        e_ic = DES3.encrypt(keys.k_enc, rnd_ic + rnd_ifd + k_ic)
        self._pending_sm = session_from_exchange(k_ifd, k_ic, rnd_ic, rnd_ifd)
        return e_ic + DES3.mac(keys.k_mac, pad(e_ic, 8)), SW_OK

    # -- PACE and chip authentication -----------------------------------------------------------

    def _mse(self, cmd: CommandApdu, protected: bool) -> tuple[bytes, int]:
        try:
            items = tlv.parse_all(cmd.data)
        except DataFormatError:
            return b"", SW_WRONG_DATA
        if (cmd.p1, cmd.p2) == (0xC1, 0xA4):
            return self._mse_pace(items)
        if (cmd.p1, cmd.p2) == (0x41, 0xA6) and protected:
            return self._ca_key_agreement(tlv.find(items, 0x91), "3DES")
        if (cmd.p1, cmd.p2) == (0x41, 0xA4) and protected:
            oid_item = tlv.find(items, 0x80)
            self._ca_oid = decode_oid(oid_item.value) if oid_item else None
            return b"", SW_OK
        return b"", SW_WRONG_P1P2

    def _mse_pace(self, items: list[tlv.Tlv]) -> tuple[bytes, int]:
        self._check_not_blocked()
        oid_item, ref_item = tlv.find(items, 0x80), tlv.find(items, 0x83)
        if oid_item is None or ref_item is None:
            return b"", SW_WRONG_DATA
        oid = decode_oid(oid_item.value)
        offer = next((o for o in self.profile.pace if o.oid == oid), None)
        if offer is None:
            return b"", SW_WRONG_DATA
        param_item = tlv.find(items, 0x84)
        if param_item is not None and param_item.value != bytes([offer.parameter_id]):
            return b"", SW_WRONG_DATA
        reference = ref_item.value[0] if ref_item.value else 0
        if reference == PASSWORD_MRZ:
            password = password_for(self.issued.mrz_key)
        elif reference == PASSWORD_CAN:
            password = password_for(CanKey(self.profile.can))
        else:
            return b"", SW_WRONG_DATA
        info = PaceInfo(oid, 2, offer.parameter_id)

        self._pace = _PaceRun(info, info.suite, curve_for_parameter_id(offer.parameter_id), password)
        return b"", SW_OK

    def _general_authenticate(self, cmd: CommandApdu, protected: bool) -> tuple[bytes, int]:
        try:
            template = tlv.parse_single(cmd.data, 0x7C).children()
        except DataFormatError:
            return b"", SW_WRONG_DATA
        if self._ca_oid is not None and protected:
            item = tlv.find(template, 0x80)
            oid, self._ca_oid = self._ca_oid, None
            cipher = {v: k for k, v in CIPHER_ARC.items()}.get(int(oid.split(".")[-1]), "AES-128")
            _, sw = self._ca_key_agreement(item, cipher)
            return tlv.encode(0x7C, b""), sw
        run = self._pace
        if run is None:
            return b"", SW_CONDITIONS_NOT_SATISFIED
        if self.faults.broken_pace:
            self._pace = None
            return b"", 0x6F00
        try:
            return self._pace_step(run, template)
        except DeviceProtocolError:
            self._pace = None
            return b"", SW_WRONG_DATA

    def _pace_step(self, run: _PaceRun, template: list[tlv.Tlv]) -> tuple[bytes, int]:
        curve, suite = run.curve, run.suite
        if not template:
            nonce = self._random(16)
            run.nonce = int.from_bytes(nonce, "big")
            encrypted = suite.encrypt(suite.kdf(run.password.secret, 3), nonce)
            return tlv.encode(0x7C, tlv.encode(0x80, encrypted)), SW_OK
        item = template[0]
        if item.tag == 0x81:
            sk_map = self._scalar(curve)
            shared = curve.multiply(sk_map, curve.decode_point(item.value))
            run.mapped = map_generator(curve, run.nonce, shared)
            public = curve.encode_point(curve.multiply(sk_map, curve.generator))
            return tlv.encode(0x7C, tlv.encode(0x82, public)), SW_OK
        if item.tag == 0x83 and run.mapped is not None:
            run.pk_eph_pcd = curve.decode_point(item.value)
            run.sk_eph = self._scalar(curve)
            run.pk_eph = curve.multiply(run.sk_eph, run.mapped)
            secret = curve.multiply_x(run.sk_eph, run.pk_eph_pcd).to_bytes(curve.field_size, "big")
            run.ks_enc, run.ks_mac = suite.kdf(secret, KDF_ENC), suite.kdf(secret, KDF_MAC)
            return tlv.encode(0x7C, tlv.encode(0x84, curve.encode_point(run.pk_eph))), SW_OK
        if item.tag == 0x85 and run.pk_eph is not None and run.pk_eph_pcd is not None:
            self._pace = None
            expected = suite.token_mac(run.ks_mac, public_key_object(run.info.oid, curve, run.pk_eph))
            if not hmac.compare_digest(expected, item.value):
                self._wrong_key()
            token = suite.token_mac(run.ks_mac, public_key_object(run.info.oid, curve, run.pk_eph_pcd))
            self._pending_sm = SecureMessaging(suite, run.ks_enc, run.ks_mac, 0)
            return tlv.encode(0x7C, tlv.encode(0x86, token)), SW_OK
        self._pace = None
        return b"", SW_CONDITIONS_NOT_SATISFIED

    def _ca_key_agreement(self, item: tlv.Tlv | None, cipher: str) -> tuple[bytes, int]:
        key, curve = self.issued.ca_key, self.issued.ca_curve
        if key is None or curve is None or item is None:
            return b"", SW_CONDITIONS_NOT_SATISFIED
        try:
            point = curve.decode_point(item.value)
        except DeviceProtocolError:
            return b"", SW_WRONG_DATA
        shared = curve.multiply(key.private_numbers().private_value, point)
        secret = shared[0].to_bytes(curve.field_size, "big")

        suite = {"3DES": DES3, "AES-128": AES128, "AES-192": AES192, "AES-256": AES256}[cipher]
        self._pending_sm = SecureMessaging(suite, suite.kdf(secret, KDF_ENC), suite.kdf(secret, KDF_MAC), 0)
        return b"", SW_OK

    # -- active authentication -----------------------------------------------------------------

    def _internal_authenticate(self, cmd: CommandApdu, protected: bool) -> tuple[bytes, int]:
        self._need_secure(protected)
        key = self.issued.aa_key
        if key is None:
            return b"", SW_INS_NOT_SUPPORTED
        if len(cmd.data) != 8:
            return b"", SW_WRONG_DATA
        if isinstance(key, rsa.RSAPrivateKey):
            return _sign_iso9796_2(key, cmd.data, self._random), SW_OK
        der = key.sign(cmd.data, ec.ECDSA(hashes.SHA256()))
        r, s = decode_dss_signature(der)
        size = (key.curve.key_size + 7) // 8
        return r.to_bytes(size, "big") + s.to_bytes(size, "big"), SW_OK


def _sign_iso9796_2(key: rsa.RSAPrivateKey, challenge: bytes, random_bytes: Callable[[int], bytes]) -> bytes:
    numbers = key.private_numbers()
    n = numbers.public_numbers.n
    k = (n.bit_length() + 7) // 8
    m1 = random_bytes(k - 2 - 20)
    digest = hashlib.sha1(m1 + challenge).digest()  # noqa: S324 - the AA trailer 'BC' means SHA-1
    rep = int.from_bytes(b"\x6a" + m1 + digest + b"\xbc", "big")
    # the private operation by CRT, four times faster than pow(rep, d, n)
    m_p = pow(rep, numbers.dmp1, numbers.p)
    m_q = pow(rep, numbers.dmq1, numbers.q)
    sig = m_q + numbers.q * ((numbers.iqmp * (m_p - m_q)) % numbers.p)
    return min(sig, n - sig).to_bytes(k, "big")
