"""Block-cipher suites of ICAO 9303 secure messaging: 3DES (retail MAC) and AES (CMAC).

Key derivation (Part 11, 9.7.1): ``KDF(K, c) = H(K || c)`` with SHA-1 for 3DES and
AES-128, SHA-256 for AES-192/256; 3DES keys get DES parity bits.
"""

from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass

from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives import cmac
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from agent.errors import DataFormatError, DeviceProtocolError

KDF_ENC = 1
KDF_MAC = 2
KDF_PACE = 3


class CipherKind(enum.Enum):
    DES3 = "3DES"
    AES128 = "AES-128"
    AES192 = "AES-192"
    AES256 = "AES-256"


def pad(data: bytes, block: int) -> bytes:
    """ISO/IEC 9797-1 padding method 2: 0x80 then zeros to a block boundary."""
    data = data + b"\x80"
    return data + b"\x00" * (-len(data) % block)


def unpad(data: bytes) -> bytes:
    stripped = data.rstrip(b"\x00")
    if not stripped or stripped[-1] != 0x80:
        raise DeviceProtocolError("secure messaging: bad padding in decrypted data")
    return stripped[:-1]


def des3_key(key: bytes) -> bytes:
    """Expand an 8- or 16-byte DES key to the 24-byte EDE form (K1 K2 K1 / K K K)."""
    if len(key) == 8:
        return key * 3
    if len(key) == 16:
        return key + key[:8]
    return key


def adjust_des_parity(key: bytes) -> bytes:
    out = bytearray()
    for b in key:
        high = b & 0xFE
        out.append(high | (bin(high).count("1") % 2 == 0))
    return bytes(out)


@dataclass(frozen=True, slots=True)
class CipherSuite:
    """One SM cipher: key length, block size, KDF hash, CBC and MAC functions."""

    kind: CipherKind

    @property
    def block_size(self) -> int:
        return 8 if self.kind is CipherKind.DES3 else 16

    @property
    def key_length(self) -> int:
        return {CipherKind.DES3: 16, CipherKind.AES128: 16, CipherKind.AES192: 24,
                CipherKind.AES256: 32}[self.kind]

    def kdf(self, secret: bytes, counter: int) -> bytes:
        material = secret + counter.to_bytes(4, "big")
        if self.kind in (CipherKind.DES3, CipherKind.AES128):
            digest = hashlib.sha1(material).digest()  # noqa: S324 - mandated by ICAO 9303 Part 11
        else:
            digest = hashlib.sha256(material).digest()
        key = digest[:self.key_length]
        return adjust_des_parity(key) if self.kind is CipherKind.DES3 else key

    def _cipher(self, key: bytes, iv: bytes) -> Cipher[modes.CBC]:
        if self.kind is CipherKind.DES3:
            return Cipher(TripleDES(des3_key(key)), modes.CBC(iv))
        return Cipher(algorithms.AES(key), modes.CBC(iv))

    def encrypt(self, key: bytes, data: bytes, iv: bytes | None = None) -> bytes:
        if len(data) % self.block_size:
            raise DataFormatError("cipher input is not a whole number of blocks")
        enc = self._cipher(key, iv or bytes(self.block_size)).encryptor()
        return enc.update(data) + enc.finalize()

    def decrypt(self, key: bytes, data: bytes, iv: bytes | None = None) -> bytes:
        if len(data) % self.block_size or not data:
            raise DeviceProtocolError("secure messaging: ciphertext is not a whole number of blocks")
        dec = self._cipher(key, iv or bytes(self.block_size)).decryptor()
        return dec.update(data) + dec.finalize()

    def mac(self, key: bytes, data: bytes) -> bytes:
        """8-byte MAC of already padded ``data``: ISO 9797-1 MAC algorithm 3 (retail MAC)
        with DES for 3DES, AES-CMAC truncated to 8 bytes for AES."""
        if self.kind is CipherKind.DES3:
            return retail_mac(key, data)
        c = cmac.CMAC(algorithms.AES(key))
        c.update(data)
        return c.finalize()[:8]

    def token_mac(self, key: bytes, data: bytes) -> bytes:
        """MAC over unpadded input (PACE authentication tokens): retail MAC over the padded
        data for 3DES; AES-CMAC (which pads internally) for AES."""
        if self.kind is CipherKind.DES3:
            return retail_mac(key, pad(data, 8))
        c = cmac.CMAC(algorithms.AES(key))
        c.update(data)
        return c.finalize()[:8]


def retail_mac(key: bytes, padded: bytes) -> bytes:
    """ISO/IEC 9797-1 MAC algorithm 3 with DES (input already padded to 8 bytes)."""
    if len(padded) % 8 or not padded:
        raise DataFormatError("retail MAC input is not a whole number of blocks")
    ka, kb = key[:8], key[8:16]
    head, last = padded[:-8], padded[-8:]
    chain = bytes(8)
    if head:
        enc = Cipher(TripleDES(des3_key(ka)), modes.CBC(bytes(8))).encryptor()
        chain = (enc.update(head) + enc.finalize())[-8:]
    x = bytes(a ^ b for a, b in zip(last, chain, strict=True))
    enc = Cipher(TripleDES(des3_key(ka + kb)), modes.ECB()).encryptor()  # noqa: S305 - one block, MAC final step
    return enc.update(x) + enc.finalize()


DES3 = CipherSuite(CipherKind.DES3)
AES128 = CipherSuite(CipherKind.AES128)
AES192 = CipherSuite(CipherKind.AES192)
AES256 = CipherSuite(CipherKind.AES256)


class SessionCiphers:
    """The cipher objects of one secure channel, built once: building a cipher context costs
    about as much as running it over a short APDU, and a read sends dozens."""

    def __init__(self, suite: CipherSuite, enc_key: bytes, mac_key: bytes) -> None:
        self.suite = suite
        if suite.kind is CipherKind.DES3:
            zero = modes.CBC(bytes(8))
            self._cbc: Cipher[modes.CBC] | None = Cipher(TripleDES(des3_key(enc_key)), zero)
            self._mac_head = Cipher(TripleDES(des3_key(mac_key[:8])), zero)
            self._mac_tail = Cipher(TripleDES(des3_key(mac_key[:16])), modes.ECB())  # noqa: S305 - one block
        else:
            self._cbc = None
            self._aes = algorithms.AES(enc_key)
            self._ecb = Cipher(self._aes, modes.ECB())  # noqa: S305 - the SM IV is E(KSenc, SSC)
            self._cmac = cmac.CMAC(algorithms.AES(mac_key))

    def __repr__(self) -> str:
        return f"SessionCiphers({self.suite.kind.value}, <keys redacted>)"

    def _cipher(self, iv: bytes) -> Cipher[modes.CBC]:
        if self._cbc is not None:
            return self._cbc  # 3DES secure messaging always uses a zero IV
        return Cipher(self._aes, modes.CBC(iv))

    def iv(self, ssc: bytes) -> bytes:
        if self._cbc is not None:
            return bytes(8)
        enc = self._ecb.encryptor()
        return enc.update(ssc) + enc.finalize()

    def encrypt(self, data: bytes, iv: bytes) -> bytes:
        enc = self._cipher(iv).encryptor()
        return enc.update(data) + enc.finalize()

    def decrypt(self, data: bytes, iv: bytes) -> bytes:
        if len(data) % self.suite.block_size or not data:
            raise DeviceProtocolError("secure messaging: ciphertext is not a whole number of blocks")
        dec = self._cipher(iv).decryptor()
        return dec.update(data) + dec.finalize()

    def mac(self, padded: bytes) -> bytes:
        if self._cbc is None:
            c = self._cmac.copy()
            c.update(padded)
            return c.finalize()[:8]
        head, last = padded[:-8], padded[-8:]
        chain = bytes(8)
        if head:
            enc = self._mac_head.encryptor()
            chain = (enc.update(head) + enc.finalize())[-8:]
        x = bytes(a ^ b for a, b in zip(last, chain, strict=True))
        enc = self._mac_tail.encryptor()
        return enc.update(x) + enc.finalize()
