"""Known-answer tests from the worked examples of ICAO Doc 9303 Part 11:
Appendix D (BAC key derivation, mutual authentication, secure messaging) and
Appendix G (PACE, ECDH generic mapping on brainpoolP256r1, AES-128)."""

from __future__ import annotations

import hashlib

import pytest

from agent.domain.idcard import MrzKey
from agent.drivers.idcard.apdu import CommandApdu
from agent.drivers.idcard.bac import derive_keys, perform_bac, session_from_exchange
from agent.drivers.idcard.channel import CardChannel
from agent.drivers.idcard.cipher_suite import AES128, DES3, KDF_ENC, KDF_MAC, KDF_PACE, pad
from agent.drivers.idcard.curves import curve_for_parameter_id
from agent.drivers.idcard.mrz import bac_key_seed, mrz_information, pace_password
from agent.drivers.idcard.pace import (
    PASSWORD_MRZ,
    PacePassword,
    decrypt_nonce,
    map_generator,
    public_key_object,
)
from agent.drivers.idcard.secure_messaging import SecureMessaging
from agent.drivers.idcard.security_infos import parse_security_infos

H = bytes.fromhex

# -- Appendix D -------------------------------------------------------------------------------------

D_KEY = MrzKey("L898902C", "690806", "940623")
D_KS_ENC = H("979EC13B1CBFE9DCD01AB0FED307EAE5")
D_KS_MAC = H("F1CB1F1FB5ADF208806B89DC579DC1F8")


def test_appendix_d_key_derivation() -> None:
    assert mrz_information(D_KEY) == "L898902C<369080619406236"
    assert bac_key_seed(D_KEY) == H("239AB9CB282DAF66231DC5A4DF6BFBAE")
    keys = derive_keys(bac_key_seed(D_KEY))
    assert keys.k_enc == H("AB94FDECF2674FDFB9B391F85D7F76F2")
    assert keys.k_mac == H("7962D9ECE03D1ACD4C76089DCE131543")


def test_appendix_d_mutual_authentication_cryptograms() -> None:
    keys = derive_keys(bac_key_seed(D_KEY))
    s = H("781723860C06C2264608F919887022120B795240CB7049B01C19B33E32804F0B")
    e_ifd = DES3.encrypt(keys.k_enc, s)
    assert e_ifd == H("72C29C2371CC9BDB65B779B8E8D37B29ECC154AA56A8799FAE2F498F76ED92F2")
    assert DES3.mac(keys.k_mac, pad(e_ifd, 8)) == H("5F1448EEA8AD90A7")
    response = H("46B9342A41396CD7386BF5803104D7CEDC122B9132139BAF2EEDC94EE178534F")
    assert DES3.mac(keys.k_mac, pad(response, 8)) == H("2F2D235D074D7449")
    assert DES3.decrypt(keys.k_enc, response) == H(
        "4608F91988702212781723860C06C2260B4F80323EB3191CB04970CB4052790B"
    )


def test_appendix_d_session_keys_and_ssc() -> None:
    sm = session_from_exchange(
        H("0B795240CB7049B01C19B33E32804F0B"),
        H("0B4F80323EB3191CB04970CB4052790B"),
        H("4608F91988702212"),
        H("781723860C06C226"),
    )
    assert derive_keys(H("0036D272F5C350ACAC50C3F572D23600")).k_enc == D_KS_ENC
    assert derive_keys(H("0036D272F5C350ACAC50C3F572D23600")).k_mac == D_KS_MAC
    assert sm.ssc == 0x887022120C06C226
    # the session built from the exchange protects the first command exactly as the example
    assert sm.protect(CommandApdu(0x00, 0xA4, 0x02, 0x0C, H("011E"))) == H(
        "0CA4020C158709016375432908C044F68E08BF8B92D635FF24F800"
    )


class ScriptedTransport:
    """Answers a fixed APDU script and checks every command against it."""

    def __init__(self, script: list[tuple[bytes | None, bytes]]) -> None:
        self.script = list(script)
        self.extended_length = False

    async def transmit(self, apdu: bytes) -> bytes:
        expected, answer = self.script.pop(0)
        if expected is not None:
            assert apdu == expected
        return answer


async def test_appendix_d_bac_protocol_run() -> None:
    transport = ScriptedTransport(
        [
            (H("0084000008"), H("4608F91988702212") + b"\x90\x00"),
            (
                H("0082000028")
                + H("72C29C2371CC9BDB65B779B8E8D37B29ECC154AA56A8799FAE2F498F76ED92F2")
                + H("5F1448EEA8AD90A7")
                + b"\x28",
                H("46B9342A41396CD7386BF5803104D7CEDC122B9132139BAF2EEDC94EE178534F2F2D235D074D7449")
                + b"\x90\x00",
            ),
        ]
    )
    channel = CardChannel(transport)
    sm = await perform_bac(
        channel, D_KEY, rnd_ifd=H("781723860C06C226"), k_ifd=H("0B795240CB7049B01C19B33E32804F0B")
    )
    assert sm.ssc == 0x887022120C06C226
    assert channel.sm is sm
    assert not transport.script


def test_appendix_d_secure_messaging_sequence() -> None:
    sm = SecureMessaging(DES3, D_KS_ENC, D_KS_MAC, 0x887022120C06C226)
    assert sm.protect(CommandApdu(0x00, 0xA4, 0x02, 0x0C, H("011E"))) == H(
        "0CA4020C158709016375432908C044F68E08BF8B92D635FF24F800"
    )
    assert sm.ssc == 0x887022120C06C227
    answer = sm.unprotect(H("990290008E08FA855A5D4C50A8ED9000"))
    assert (answer.data, answer.sw) == (b"", 0x9000)

    assert sm.protect(CommandApdu(0x00, 0xB0, 0x00, 0x00, le=4)) == H(
        "0CB000000D9701048E08ED6705417E96BA5500"
    )
    answer = sm.unprotect(H("8709019FF0EC34F9922651990290008E08AD55CC17140B2DED9000"))
    assert answer.data == H("60145F01")

    assert sm.protect(CommandApdu(0x00, 0xB0, 0x00, 0x04, le=0x12)) == H(
        "0CB000040D9701128E082EA28A70F3C7B53500"
    )
    answer = sm.unprotect(
        H("871901FB9235F4E4037F2327DCC8964F1F9B8C30F42C8E2FFF224A990290008E08C8B2787EAEA07D749000")
    )
    assert answer.data == H("04303130365F36063034303030305C026175")
    assert sm.ssc == 0x887022120C06C22C


def test_appendix_d_response_with_a_flipped_mac_is_rejected() -> None:
    from agent.errors import DeviceProtocolError

    sm = SecureMessaging(DES3, D_KS_ENC, D_KS_MAC, 0x887022120C06C227)
    with pytest.raises(DeviceProtocolError):
        sm.unprotect(H("990290008E08FA855A5D4C50A8EC9000"))


def test_card_side_secure_messaging_mirrors_the_terminal() -> None:
    terminal = SecureMessaging(DES3, D_KS_ENC, D_KS_MAC, 0x887022120C06C22A)
    card = SecureMessaging(DES3, D_KS_ENC, D_KS_MAC, 0x887022120C06C22A)
    from agent.drivers.idcard.apdu import parse_command

    raw = terminal.protect(CommandApdu(0x00, 0xB0, 0x00, 0x04, le=0x12))
    assert raw == H("0CB000040D9701128E082EA28A70F3C7B53500")
    cmd, _ = parse_command(raw)
    plain = card.unprotect_command(cmd)
    assert (plain.ins, plain.p2, plain.le) == (0xB0, 0x04, 0x12)
    response = card.protect_response(H("04303130365F36063034303030305C026175"), 0x9000)
    assert response == H(
        "871901FB9235F4E4037F2327DCC8964F1F9B8C30F42C8E2FFF224A990290008E08C8B2787EAEA07D749000"
    )
    assert terminal.unprotect(response).data == H("04303130365F36063034303030305C026175")


# -- Appendix G (PACE, ECDH generic mapping) --------------------------------------------------------

G_KEY = MrzKey("T22000129", "640812", "101031")
G_OID = "0.4.0.127.0.7.2.2.4.2.2"


def test_appendix_g_card_access_and_password() -> None:
    infos = parse_security_infos(H("3114301206 0A04007F0007020204020202010202010D".replace(" ", "")))
    assert len(infos.pace) == 1
    assert infos.pace[0].oid == G_OID
    assert infos.pace[0].parameter_id == 13
    assert infos.pace[0].supported
    assert pace_password(G_KEY) == H("7E2D2A41C74EA0B38CD36F863939BFA8E9032AAD")
    assert AES128.kdf(pace_password(G_KEY), KDF_PACE) == H("89DED1B26624EC1E634C1989302849DD")


def test_appendix_g_nonce_mapping_and_key_agreement() -> None:
    password = PacePassword(PASSWORD_MRZ, pace_password(G_KEY))
    nonce = decrypt_nonce(AES128, password, H("95A3A016522EE98D01E76CB6B98B42C3"))
    assert nonce == H("3F00C4D39D153F2B2A214A078D899B22")

    curve = curve_for_parameter_id(13)
    sk_map = int("7F4EF07B9EA82FD78AD689B38D0BC78CF21F249D953BC46F4C6E19259C010F99", 16)
    assert curve.encode_point(curve.multiply(sk_map, curve.generator)) == H(
        "047ACF3EFC982EC45565A4B155129EFBC74650DCBFA6362D896FC70262E0C2CC5E544552DCB6725218799115B55C9BAA6D9F6BC3A9618E70C25AF71777A9C4922D"
    )
    pk_map_ic = curve.decode_point(
        H(
            "04824FBA91C9CBE26BEF53A0EBE7342A3BF178CEA9F45DE0B70AA601651FBA3F5730D8C879AAA9C9F73991E61B58F4D52EB87A0A0C709A49DC63719363CCD13C54"
        )
    )
    shared = curve.multiply(sk_map, pk_map_ic)
    assert curve.encode_point(shared) == H(
        "0460332EF2450B5D247EF6D3868397D398852ED6E8CAF6FFEEF6BF85CA57057FD50840CA7415BAF3E43BD414D35AA4608B93A2CAF3A4E3EA4E82C9C13D03EB7181"
    )
    mapped = map_generator(curve, int.from_bytes(nonce, "big"), shared)
    assert curve.encode_point(mapped) == H(
        "048CED63C91426D4F0EB1435E7CB1D74A46723A0AF21C89634F65A9AE87A9265E28C879506743F8611AC33645C5B985C80B5F09A0B83407C1B6A4D857AE76FE522"
    )

    sk_eph = int("A73FB703AC1436A18E0CFA5ABB3F7BEC7A070E7A6788486BEE230C4A22762595", 16)
    pk_eph = curve.multiply(sk_eph, mapped)
    assert curve.encode_point(pk_eph) == H(
        "042DB7A64C0355044EC9DF190514C625CBA2CEA48754887122F3A5EF0D5EDD301C"
        "3556F3B3B186DF10B857B58F6A7EB80F20BA5DC7BE1D43D9BF850149FBB36462"
    )
    pk_eph_ic = curve.decode_point(
        H(
            "049E880F842905B8B3181F7AF7CAA9F0EFB743847F44A306D2D28C1D9EC65DF6DB7764B22277A2EDDC3C265A9F018F9CB852E111B768B326904B59A0193776F094"
        )
    )
    secret = curve.multiply(sk_eph, pk_eph_ic)[0].to_bytes(32, "big")
    assert secret == H("28768D20701247DAE81804C9E780EDE582A9996DB4A315020B2733197DB84925")
    ks_enc, ks_mac = AES128.kdf(secret, KDF_ENC), AES128.kdf(secret, KDF_MAC)
    assert ks_enc == H("F5F0E35C0D7161EE6724EE513A0D9A7F")
    assert ks_mac == H("FE251C7858B356B24514B3BD5F4297D1")

    assert AES128.token_mac(ks_mac, public_key_object(G_OID, curve, pk_eph_ic)) == H("C2B0BD78D94BA866")
    assert AES128.token_mac(ks_mac, public_key_object(G_OID, curve, pk_eph)) == H("3ABB9674BCE93C08")


def test_curve_arithmetic_agrees_with_cryptography() -> None:
    from cryptography.hazmat.primitives.asymmetric import ec

    from agent.drivers.idcard.curves import STANDARD_CURVES

    checked = 0
    for curve in STANDARD_CURVES:
        assert curve.contains(curve.generator)
        if curve.crypto_curve is None:
            # no library curve to compare with: n*G must be the point at infinity (order check)
            assert curve.multiply(curve.n - 1, curve.generator) == (curve.gx, (-curve.gy) % curve.p)
            continue
        k = int.from_bytes(hashlib.sha256(curve.name.encode()).digest(), "big") % curve.n
        numbers = ec.derive_private_key(k, curve.crypto_curve).public_key().public_numbers()
        assert curve._multiply_python(k, curve.generator) == (numbers.x, numbers.y)
        assert curve.multiply(k, curve.generator) == (numbers.x, numbers.y)
        checked += 1
    assert checked == 8


def test_openssl_and_python_multiplication_agree_on_any_point() -> None:
    """Curve.multiply takes OpenSSL's way (ECDH plus a square root, the sign found with a
    second ECDH) where it can: the same points as the Python arithmetic, edge scalars too."""
    import random

    from agent.drivers.idcard.curves import STANDARD_CURVES
    from agent.errors import DeviceProtocolError

    rng = random.Random(9303)
    for curve in STANDARD_CURVES:
        other = curve._multiply_python(rng.randrange(2, curve.n - 1), curve.generator)
        scalars = [1, 2, 3, curve.n - 1, curve.n - 2, curve.n + 5] + [rng.randrange(1, curve.n) for _ in range(4)]
        for k in scalars:
            for point in (curve.generator, other):
                expected = curve._multiply_python(k, point)
                assert curve.multiply(k, point) == expected, (curve.name, k)
                assert curve.multiply_x(k, point) == expected[0], (curve.name, k)
        with pytest.raises(DeviceProtocolError):
            curve.multiply(curve.n, other)
        if curve.crypto_curve is not None:
            with pytest.raises(DeviceProtocolError):
                curve.multiply_x(5, (other[0], (other[1] + 1) % curve.p))  # not on the curve


def test_aes_secure_messaging_cross_check() -> None:
    """AES-128 SM (Part 11, 9.8: IV = E(KSenc, SSC), CMAC over padded data, SSC from 0),
    checked against values produced by an independent implementation."""
    sm = SecureMessaging(AES128, H("0102030405060708090a0b0c0d0e0f10"), H("a1a2a3a4a5a6a7a8a9aaabacadaeafb0"), 0)
    assert sm.protect(CommandApdu(0x00, 0xA4, 0x04, 0x0C, H("A0000002471001"))) == H(
        "0ca4040c1d871101ae6896c36d5e1f3bd4ecbaf7a661652b8e08c783f86389338e0d00"
    )
    assert sm.unprotect(H("990290008e08117dd72826d775709000")).sw == 0x9000
    assert sm.protect(CommandApdu(0x00, 0xB0, 0x00, 0x00, le=20)) == H("0cb000000d9701148e0829b7480811e8ae7600")
    answer = sm.unprotect(
        H(
            "872101a57fd10b28b996eff1162d1ecf14f100d960990bd394a608aac46e29a9a5ad7c"
            "990290008e087d192821635d4fa79000"
        )
    )
    assert answer.data == H("303132333435363738393a3b3c3d3e3f40414243")
