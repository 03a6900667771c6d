"""Machine readable zone (ICAO 9303 Parts 3, 4, 5): TD1 and TD3 parsing with check digits,
and the BAC/PACE key seed ("MRZ information") from document number and dates.

CCCD: a TD1 card whose document number is the last 9 digits of the 12-digit ID; the
full ID usually sits in the optional data of line 1.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from dataclasses import dataclass

from agent.domain.idcard import MrzKey
from agent.errors import DataFormatError, InvalidRequestError

_WEIGHTS = (7, 3, 1)
_MRZ_CHARS = re.compile(r"^[0-9A-Z<]*$")


def char_value(c: str) -> int:
    if c.isdigit():
        return ord(c) - ord("0")
    if "A" <= c <= "Z":
        return ord(c) - ord("A") + 10
    if c == "<":
        return 0
    raise DataFormatError("MRZ contains a character outside 0-9 A-Z <")


#: The values of the MRZ alphabet, looked up before falling back to :func:`char_value`.
_CHAR_VALUES = {**{chr(48 + d): d for d in range(10)}, **{chr(65 + i): 10 + i for i in range(26)}, "<": 0}


def check_digit(field: str) -> str:
    total = 0
    for i, c in enumerate(field):
        value = _CHAR_VALUES.get(c)
        total += (char_value(c) if value is None else value) * _WEIGHTS[i % 3]
    return str(total % 10)


def _verify(field: str, digit: str, what: str) -> None:
    if digit == "<" and set(field) <= {"<"}:
        return
    if check_digit(field) != digit:
        raise DataFormatError(f"MRZ check digit of the {what} does not match")


def parse_yymmdd(value: str, *, future: bool) -> dt.date | None:
    """An MRZ date. Birth dates pick the century that puts them in the past; expiry dates
    are 20xx. Unknown parts (``<``) give None."""
    if "<" in value:
        return None
    if not re.fullmatch(r"\d{6}", value):
        raise DataFormatError("MRZ date is not 6 digits")
    yy, mm, dd = int(value[:2]), int(value[2:4]), int(value[4:6])
    if future:
        year = 2000 + yy
    else:
        this_year = dt.date.today().year % 100
        year = (2000 if yy <= this_year else 1900) + yy
    try:
        return dt.date(year, mm, dd)
    except ValueError as exc:
        raise DataFormatError("MRZ date is not a calendar date") from exc


@dataclass(frozen=True, slots=True)
class Mrz:
    """A parsed MRZ. ``optional_data`` concatenates the optional fields."""

    format: str  # "TD1" or "TD3"
    document_code: str
    issuing_state: str
    document_number: str
    date_of_birth: str
    sex: str
    date_of_expiry: str
    nationality: str
    optional_data: str
    primary_name: str
    secondary_name: str
    text: str

    @property
    def full_name(self) -> str:
        return " ".join(p for p in (self.primary_name, self.secondary_name) if p)

    def key(self) -> MrzKey:
        return MrzKey(self.document_number, self.date_of_birth, self.date_of_expiry)

    def __repr__(self) -> str:
        return f"Mrz({self.format}, <redacted>)"


def _name(field: str) -> tuple[str, str]:
    primary, _, secondary = field.partition("<<")
    return primary.replace("<", " ").strip(), secondary.replace("<", " ").strip()


def _document_number(number: str, digit: str, optional: str) -> tuple[str, str]:
    """Long document numbers (> 9 characters) continue in the optional data, ended by their
    check digit, with ``<`` in the check digit position (Part 5, 4.2.2 note j)."""
    if digit == "<" and optional and optional[0] != "<":
        rest = optional.split("<", 1)[0]
        if len(rest) < 2:
            raise DataFormatError("MRZ long document number is malformed")
        full = number + rest[:-1]
        _verify(full, rest[-1], "document number")
        return full, optional[len(rest):]
    _verify(number, digit, "document number")
    return number.rstrip("<"), optional


def parse(text: str) -> Mrz:
    """Parse a TD1 (3 x 30) or TD3 (2 x 44) MRZ, checking every check digit."""
    compact = text.replace("\n", "").replace("\r", "").replace(" ", "")
    if not _MRZ_CHARS.match(compact):
        raise DataFormatError("MRZ contains a character outside 0-9 A-Z <")
    if len(compact) == 90:
        return _parse_td1(compact)
    if len(compact) == 88:
        return _parse_td3(compact)
    raise DataFormatError("MRZ length fits neither TD1 (90) nor TD3 (88)")


def _parse_td1(m: str) -> Mrz:
    l1, l2, l3 = m[:30], m[30:60], m[60:90]
    number, optional1 = _document_number(l1[5:14], l1[14], l1[15:30])
    dob, expiry = l2[0:6], l2[8:14]
    _verify(dob, l2[6], "date of birth")
    _verify(expiry, l2[14], "date of expiry")
    composite = l1[5:30] + l2[0:7] + l2[8:15] + l2[18:29]
    _verify(composite, l2[29], "composite")
    primary, secondary = _name(l3)
    return Mrz("TD1", l1[0:2].rstrip("<"), l1[2:5].rstrip("<"), number, dob, l2[7], expiry,
               l2[15:18].rstrip("<"), (optional1 + "<" + l2[18:29]).strip("<"), primary, secondary, m)


def _parse_td3(m: str) -> Mrz:
    l1, l2 = m[:44], m[44:88]
    number, _ = _document_number(l2[0:9], l2[9], "")
    dob, expiry = l2[13:19], l2[21:27]
    _verify(dob, l2[19], "date of birth")
    _verify(expiry, l2[27], "date of expiry")
    _verify(l2[28:42], l2[42], "personal number")
    composite = l2[0:10] + l2[13:20] + l2[21:43]
    _verify(composite, l2[43], "composite")
    primary, secondary = _name(l1[5:44])
    return Mrz("TD3", l1[0:2].rstrip("<"), l1[2:5].rstrip("<"), number, dob, l2[20], expiry,
               l2[10:13].rstrip("<"), l2[28:42].strip("<"), primary, secondary, m)


def validate_key(key: MrzKey) -> None:
    """Reject malformed key material from a client before it reaches a card."""
    if not re.fullmatch(r"[0-9A-Z<]{1,22}", key.document_number.upper()):
        raise InvalidRequestError("document number must be 1-22 characters 0-9 A-Z")
    if not re.fullmatch(r"\d{6}", key.date_of_birth):
        raise InvalidRequestError("birth date must be YYMMDD")
    # Filler for "no expiry" (TD1 cards without expiry; see qr_key.NO_EXPIRY_CANDIDATES).
    if not re.fullmatch(r"\d{6}|<{6}", key.date_of_expiry):
        raise InvalidRequestError("expiry date must be YYMMDD")


def mrz_information(key: MrzKey) -> str:
    """Document number + check digit + birth date + check + expiry + check (9303 Part 11, 9.7.2)."""
    validate_key(key)
    number = key.document_number.upper()
    if len(number) < 9:
        number = number + "<" * (9 - len(number))
    return (number + check_digit(number) + key.date_of_birth + check_digit(key.date_of_birth)
            + key.date_of_expiry + check_digit(key.date_of_expiry))


def bac_key_seed(key: MrzKey) -> bytes:
    """K_seed: the first 16 bytes of SHA-1 over the MRZ information."""
    return hashlib.sha1(mrz_information(key).encode("ascii")).digest()[:16]  # noqa: S324 - ICAO


def pace_password(key: MrzKey) -> bytes:
    """The PACE password from the MRZ: SHA-1 over the MRZ information (all 20 bytes)."""
    return hashlib.sha1(mrz_information(key).encode("ascii")).digest()  # noqa: S324 - ICAO
