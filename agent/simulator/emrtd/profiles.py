"""Card profiles for the eMRTD emulator: what a card holds and which protocols it speaks.

The sample citizen is made up (the name means "test" in Vietnamese) and every ID number
is fictitious. The face is a generated picture, not a person.
"""

from __future__ import annotations

import dataclasses
import functools
import io
import random
from collections.abc import Mapping
from dataclasses import dataclass, field

from PIL import Image, ImageDraw

from agent.drivers.idcard.mrz import check_digit
from agent.drivers.idcard.security_infos import ID_CA, ID_PACE

PACE_ECDH_GM = ID_PACE + ".2"
CA_ECDH = ID_CA + ".2"
CIPHER_ARC = {"3DES": 1, "AES-128": 2, "AES-192": 3, "AES-256": 4}


@dataclass(frozen=True, slots=True)
class PaceOffer:
    """One PACEInfo in EF.CardAccess: cipher ("3DES", "AES-128"...) and standardized
    domain parameter id (12 = NIST P-256, 13 = brainpoolP256r1, ...)."""

    cipher: str = "AES-128"
    parameter_id: int = 13

    @property
    def oid(self) -> str:
        return f"{PACE_ECDH_GM}.{CIPHER_ARC[self.cipher]}"


@dataclass(frozen=True)
class CardProfile:
    label: str
    mrz: str
    can: str = "123456"
    dg13: Mapping[int, str | tuple[str, str]] | None = None
    nested_parents: bool = True
    #: What DG13 carries ahead of its pairs: "none", "version" or "version-oid" (see build_dg13).
    dg13_header: str = "version"
    face_format: str = "jpeg"  # "jpeg" or "jp2"
    bac: bool = True
    pace: tuple[PaceOffer, ...] = ()
    active_auth: str | None = "rsa"  # "rsa", "ec" or None (no DG15)
    chip_auth: str | None = None  # cipher of chip authentication ("3DES", "AES-128"...) or None (no DG14)
    extended_length: bool = True
    extra_data_groups: Mapping[int, bytes] = field(default_factory=dict)
    pki_kind: str = "ec"  # "ec" or "rsa" for CSCA/DS keys
    country: str = "VN"

    def __repr__(self) -> str:
        return f"CardProfile({self.label})"


def td1(doc_code: str, state: str, number: str, optional1: str, dob: str, sex: str, expiry: str,
        nationality: str, optional2: str, surname: str, given: str) -> str:
    def fit(value: str, size: int) -> str:
        return (value + "<" * size)[:size]

    number9 = fit(number, 9)
    l1 = fit(doc_code, 2) + fit(state, 3) + number9 + check_digit(number9) + fit(optional1, 15)
    l2 = (dob + check_digit(dob) + sex + expiry + check_digit(expiry) + fit(nationality, 3)
          + fit(optional2, 11))
    l2 += check_digit(l1[5:30] + l2[0:7] + l2[8:15] + l2[18:29])
    l3 = fit(surname.replace(" ", "<") + "<<" + given.replace(" ", "<"), 30)
    return "\n".join((l1, l2, l3))


def td3(doc_code: str, state: str, surname: str, given: str, number: str, nationality: str, dob: str,
        sex: str, expiry: str, personal: str) -> str:
    def fit(value: str, size: int) -> str:
        return (value + "<" * size)[:size]

    name = surname.replace(" ", "<") + "<<" + given.replace(" ", "<")
    l1 = fit(doc_code, 2) + fit(state, 3) + fit(name, 39)
    number9 = fit(number, 9)
    personal14 = fit(personal, 14)
    l2 = (number9 + check_digit(number9) + fit(nationality, 3) + dob + check_digit(dob) + sex + expiry
          + check_digit(expiry) + personal14 + check_digit(personal14))
    l2 += check_digit(l2[0:10] + l2[13:20] + l2[21:43])
    return "\n".join((l1, l2))


SAMPLE_ID = "001199012345"
SAMPLE_DG13: dict[int, str | tuple[str, str]] = {
    1: SAMPLE_ID,
    2: "Trần Thị Thử Nghiệm",
    3: "15/03/1999",
    4: "Nữ",
    5: "Việt Nam",
    6: "Kinh",
    7: "Không",
    8: "Xã Mẫu Thử, Huyện Giả Định, Tỉnh Ví Dụ",
    9: "Số 1 Đường Kiểm Thử, Phường Mô Phỏng, Thành phố Thí Điểm",
    10: "Nốt ruồi C:1cm trên đuôi mắt phải",
    11: "10/01/2024",
    12: "15/03/2039",
    13: ("Trần Văn Mẫu", "Lê Thị Mẫu"),
    14: "",
    15: "012345678",
}


def sample_cccd(**changes: object) -> CardProfile:
    """A Vietnamese CCCD (TD1) with DG13, PACE (AES-128, brainpoolP256r1) and BAC, AA (RSA).

    Issued on 10 January 2024 to a holder born on 15 March 1999 (aged 24: within the two
    years before 25), it expires at 40, on 15 March 2039, as Article 21 of the 2014 law has it
    (``drivers/idcard/qr_key.py``), so the key derived from its QR code opens it."""
    mrz = td1("ID", "VNM", SAMPLE_ID[3:], SAMPLE_ID, "990315", "F", "390315", "VNM", "",
              "TRAN", "THI THU NGHIEM")
    base = CardProfile(label="cccd", mrz=mrz, dg13=SAMPLE_DG13, pace=(PaceOffer("AES-128", 13),),
                       active_auth="rsa", chip_auth=None)
    return _replace(base, changes)


def card_qr_text(profile: CardProfile) -> str:
    """The QR code printed on the face of a CCCD with this profile's DG13, as a barcode scanner
    reads it: ``id|old id|name|ddmmyyyy birth|sex|residence|ddmmyyyy issue``."""
    if profile.dg13 is None:
        raise ValueError("only a CCCD (a profile with DG13) has a QR code")

    def text(index: int) -> str:
        value = profile.dg13.get(index, "") if profile.dg13 is not None else ""
        return value if isinstance(value, str) else ""

    def date(index: int) -> str:
        return text(index).replace("/", "")

    return "|".join((text(1), text(15), text(2), date(3), text(4), text(9), date(11)))


def sample_passport(**changes: object) -> CardProfile:
    """A TD3 passport with BAC only, AA (EC) and chip authentication (AES-128)."""
    mrz = td3("P", "VNM", "TRAN", "THI THU NGHIEM", "C9990001", "VNM", "990315", "F", "340315", SAMPLE_ID)
    base = CardProfile(label="passport", mrz=mrz, dg13=None, pace=(), active_auth="ec", chip_auth="AES-128")
    return _replace(base, changes)


def _replace(profile: CardProfile, changes: Mapping[str, object]) -> CardProfile:

    return dataclasses.replace(profile, **changes)  # type: ignore[arg-type]


@functools.lru_cache(maxsize=4)
def sample_face(fmt: str = "jpeg") -> tuple[bytes, int, int]:
    """A generated portrait-like picture (no person), about 20 KB as JPEG, as
    (bytes, width, height); ``fmt`` "jp2" gives JPEG 2000."""
    width, height = 240, 320
    rng = random.Random(9303)  # deterministic picture
    img = Image.new("RGB", (width, height), (200, 210, 225))
    draw = ImageDraw.Draw(img)
    for y in range(height):
        shade = 170 + y * 60 // height
        draw.line([(0, y), (width, y)], fill=(shade - 20, shade - 10, shade))
    draw.ellipse((60, 50, 180, 200), fill=(224, 187, 160))
    draw.rectangle((40, 220, 200, 320), fill=(40, 60, 110))
    for _ in range(1800):
        x, y = rng.randrange(width), rng.randrange(height)
        c = rng.randrange(256)
        draw.point((x, y), fill=(c, c // 2, 255 - c))
    out = io.BytesIO()
    if fmt == "jp2":
        img.save(out, format="JPEG2000", quality_mode="rates", quality_layers=[20])
    else:
        img.save(out, format="JPEG", quality=85)
    return out.getvalue(), width, height
