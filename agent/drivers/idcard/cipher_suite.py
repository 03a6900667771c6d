"""Block-cipher suites of ICAO 9303 secure messaging: 3DES (retail MAC) and AES (CMAC).

Key derivation (Part 11, 9.7.1): ``KDF(K, c) = H(K || c)`` with SHA-1 for 3DES and
AES-128, SHA-256 for AES-192/256; 3DES keys get DES parity bits.
"""

from __future__ import annotations

import enum
import hashlib
import threading
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


#: Every byte with its low bit set for odd parity (DES keys).
_ODD_PARITY = bytes((b & 0xFE) | (bin(b & 0xFE).count("1") % 2 == 0) for b in range(256))


def adjust_des_parity(key: bytes) -> bytes:
    return key.translate(_ODD_PARITY)


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


#: Inputs up to this size go through the session's kept CBC contexts (see
#: :class:`SessionCiphers`); larger ones (a data group's bulk, maybe in another thread) get a
#: fresh context and take no lock.
_KEPT_CONTEXT_LIMIT = 1024


def _xor(a: bytes, b: bytes) -> bytes:
    return (int.from_bytes(a, "big") ^ int.from_bytes(b, "big")).to_bytes(len(a), "big")


class SessionCiphers:
    """The cipher objects of one secure channel, built once: building a cipher context costs
    about as much as running it over a short APDU, and a read sends dozens.

    The MAC chain and the decryption of short messages run through CBC contexts kept for the
    whole session and never finalised. Such a context chains each message to the previous
    one: it uses the last cipher block it saw as the IV of the next message. Feeding (or
    correcting) the first block with that block XOR the wanted IV gives exactly the result
    of a fresh context with that IV.
    """

    def __init__(self, suite: CipherSuite, enc_key: bytes, mac_key: bytes) -> None:
        self.suite = suite
        if suite.kind is CipherKind.DES3:
            zero = modes.CBC(bytes(8))
            self._des3_enc = TripleDES(des3_key(enc_key))
            self._cbc: Cipher[modes.CBC] | None = Cipher(self._des3_enc, zero)
            self._mac_chain = Cipher(TripleDES(des3_key(mac_key[:8])), zero)  # single DES with K1
            # The output transformation, one block each: decrypt with K2, encrypt with K1. ECB
            # contexts keep no state between blocks, so one of each serves the whole session
            # (under a lock: a deferred response may be checked in another thread).
            ecb = modes.ECB()  # noqa: S305 - single blocks of the MAC's final step
            self._mac_k2 = Cipher(TripleDES(des3_key(mac_key[8:16])), ecb).decryptor()
            self._mac_k1 = Cipher(TripleDES(des3_key(mac_key[:8])), ecb).encryptor()
            self._kept_mac = self._mac_chain.encryptor()
            self._kept_mac_chain = bytes(8)
            self._kept_decryptor = self._cbc.decryptor()
            self._block_lock = threading.Lock()
        else:
            self._cbc = None
            self._aes = algorithms.AES(enc_key)
            # The SM IV is E(KSenc, SSC): one block, so one stateless ECB context serves them all.
            self._ecb = Cipher(self._aes, modes.ECB()).encryptor()  # noqa: S305 - single blocks
            self._cmac = cmac.CMAC(algorithms.AES(mac_key))
            self._kept_decryptor = Cipher(self._aes, modes.CBC(bytes(16))).decryptor()
            self._block_lock = threading.Lock()
        self._kept_decrypt_chain = bytes(suite.block_size)

    def __repr__(self) -> str:
        return f"SessionCiphers({self.suite.kind.value}, <keys redacted>)"

    def _cipher(self, iv: bytes) -> Cipher[modes.CBC]:
        if self._cbc is not None:
            return self._cbc  # 3DES secure messaging always uses a zero IV
        return Cipher(self._aes, modes.CBC(iv))

    def iv(self, ssc: bytes) -> bytes:
        if self._cbc is not None:
            return bytes(8)
        with self._block_lock:
            return self._ecb.update(ssc)

    def encrypt(self, data: bytes, iv: bytes) -> bytes:
        enc = self._cipher(iv).encryptor()
        return enc.update(data) + enc.finalize()

    def decrypt(self, data: bytes, iv: bytes) -> bytes:
        block = self.suite.block_size
        if len(data) % block or not data:
            raise DeviceProtocolError("secure messaging: ciphertext is not a whole number of blocks")
        if len(data) > _KEPT_CONTEXT_LIMIT:
            dec = self._cipher(iv).decryptor()
            return dec.update(data) + dec.finalize()
        with self._block_lock:
            out = self._kept_decryptor.update(data)
            correction = _xor(self._kept_decrypt_chain, iv)
            self._kept_decrypt_chain = data[-block:]
        return _xor(out[:block], correction) + out[block:]

    def decrypt_block(self, block: bytes, previous: bytes) -> bytes:
        """One CBC step: the plaintext of cipher block ``block`` that followed ``previous``
        (the preceding cipher block, or the IV for the first block)."""
        if self._cbc is not None:
            cipher: Cipher[modes.CBC] = Cipher(self._des3_enc, modes.CBC(previous))
        else:
            cipher = Cipher(self._aes, modes.CBC(previous))
        dec = cipher.decryptor()
        return dec.update(block) + dec.finalize()

    def mac(self, padded: bytes) -> bytes:
        if self._cbc is None:
            c = self._cmac.copy()
            c.update(padded)
            return c.finalize()[:8]
        # ISO/IEC 9797-1 MAC algorithm 3: CBC over every block with K1, in one pass, then
        # E(K1, D(K2, last CBC block)).
        if len(padded) > _KEPT_CONTEXT_LIMIT:
            chained = self._mac_chain.encryptor().update(padded)[-8:]
            with self._block_lock:
                return self._mac_k1.update(self._mac_k2.update(chained))
        with self._block_lock:
            first = _xor(padded[:8], self._kept_mac_chain)
            chained = self._kept_mac.update(first + padded[8:])[-8:]
            self._kept_mac_chain = chained
            return self._mac_k1.update(self._mac_k2.update(chained))
