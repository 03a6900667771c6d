"""The chip access key of a CCCD, derived from the QR code printed on its face.

The BAC/PACE key is the MRZ's document number, birth date and expiry date (ICAO 9303 Part 11,
9.7.2). The QR code (``qr.py``) carries the 12-digit ID number, the birth date and the issue
date, but no expiry date: that one the law fixes from the other two.

- Document number: the last nine digits of the ID number (the CCCD's TD1 MRZ prints them as
  the document number; its check digit is computed by ``mrz.mrz_information``).
- Birth date: as in the QR code.
- Expiry date: the day the holder reaches the next renewal age, from these articles:

  Luật Căn cước công dân 2014 (Law 59/2014/QH13), Article 21, for cards issued until
  30 June 2024: "1. Thẻ Căn cước công dân phải được đổi khi công dân đủ 25 tuổi, đủ 40 tuổi
  và đủ 60 tuổi. 2. Trường hợp thẻ Căn cước công dân được cấp, đổi, cấp lại trong thời hạn
  2 năm trước tuổi quy định tại khoản 1 Điều này thì vẫn có giá trị sử dụng đến tuổi đổi
  thẻ tiếp theo."

  Luật Căn cước 2023 (Law 26/2023/QH15, in force 1 July 2024), Article 21, for cards issued
  since: "1. Công dân Việt Nam đã được cấp thẻ căn cước phải thực hiện thủ tục cấp đổi thẻ
  căn cước khi đủ 14 tuổi, 25 tuổi, 40 tuổi và 60 tuổi. 2. Thẻ căn cước đã được cấp, cấp
  đổi, cấp lại trong thời hạn 02 năm trước độ tuổi cấp đổi thẻ căn cước quy định tại khoản 1
  Điều này có giá trị sử dụng đến tuổi cấp đổi thẻ căn cước tiếp theo." (Its Article 46
  keeps the cards issued under the 2014 law valid until the expiry printed on them.)

  So a card expires on the holder's birthday at the first renewal age A such that the card
  was issued before the holder turned A - 2 (issued within the two years before A, or after
  A, it runs to the next age). After 60 there is no next age: a card issued from the holder's
  58th birthday on never expires ("Không thời hạn" on its face).

  "Within 2 years before age A" is read as from the (A-2)th birthday, inclusive, to the Ath,
  exclusive. A birthday of 29 February falls on 28 February in a common year (Bộ luật Dân
  sự 2015, Article 148: a period in years ending in a month without the corresponding day
  ends on that month's last day).

Where we are unsure of what the card carries, the key is a short list of candidates, tried
in this fixed order, each costing one failed authentication on the card (see
``session.read_document``); never more than :data:`MAX_CANDIDATES`:

- A card that never expires: we found no public record of the MRZ expiry field of such a
  CCCD. ICAO 9303 wants a date there, so the first candidate is ``991231``, the latest date
  the field can hold (the usual "no expiry" value of date fields); the second is the filler
  ``<<<<<<`` that some issuers put on TD1 cards without expiry (e.g. Moldova's identity
  cards for seniors), whose check digit is 0.
- A holder born on 29 February: 28 February first (the Civil Code reading above), then
  1 March.
"""

from __future__ import annotations

import datetime as dt

from agent.domain.idcard import CardQrData, MrzKey, QrKey
from agent.drivers.idcard.qr import parse_cccd_qr
from agent.errors import DataFormatError, InvalidRequestError

#: The renewal ages of each law, and the day the 2023 law took over.
RENEWAL_AGES_2014 = (25, 40, 60)
RENEWAL_AGES_2023 = (14, 25, 40, 60)
LAW_2023_IN_FORCE = dt.date(2024, 7, 1)
#: The window before a renewal age in which a card runs on to the next age (years).
GRACE_YEARS = 2

#: The MRZ expiry fields tried, in this order, for a card that never expires.
NO_EXPIRY_CANDIDATES = ("991231", "<<<<<<")
#: At most this many keys are tried on one card.
MAX_CANDIDATES = 2


def birthday(birth: dt.date, age: int, *, leap_day: str = "feb28") -> dt.date:
    """The day the holder born on ``birth`` reaches ``age`` (29 Feb -> 28 Feb, or 1 Mar)."""
    try:
        return birth.replace(year=birth.year + age)
    except ValueError:  # 29 February in a common year
        if leap_day == "mar1":
            return dt.date(birth.year + age, 3, 1)
        return dt.date(birth.year + age, 2, 28)


def renewal_ages(issued: dt.date) -> tuple[int, ...]:
    return RENEWAL_AGES_2023 if issued >= LAW_2023_IN_FORCE else RENEWAL_AGES_2014


def card_expiry(birth: dt.date, issued: dt.date, *, leap_day: str = "feb28") -> dt.date | None:
    """The expiry date the law gives a card issued on ``issued`` to a holder born on
    ``birth``; None for a card that never expires."""
    if issued < birth:
        raise DataFormatError("the issue date is before the birth date")
    for age in renewal_ages(issued):
        if issued < birthday(birth, age - GRACE_YEARS, leap_day=leap_day):
            return birthday(birth, age, leap_day=leap_day)
    return None


def _yymmdd(value: dt.date) -> str:
    return value.strftime("%y%m%d")


def expiry_candidates(birth: dt.date, issued: dt.date) -> tuple[str, ...]:
    """The MRZ expiry fields to try, in order (see the module notes)."""
    expiry = card_expiry(birth, issued)
    if expiry is None:
        return NO_EXPIRY_CANDIDATES
    candidates = [_yymmdd(expiry)]
    if (birth.month, birth.day) == (2, 29):
        other = card_expiry(birth, issued, leap_day="mar1")
        if other is not None and _yymmdd(other) not in candidates:
            candidates.append(_yymmdd(other))
    return tuple(candidates[:MAX_CANDIDATES])


def key_from_card_qr(qr: CardQrData) -> QrKey:
    """The MRZ keys the fields of a CCCD's QR code imply, in the order to try them."""
    if qr.date_of_birth is None:
        raise InvalidRequestError("the QR code has no birth date: type the MRZ or the CAN")
    if qr.date_of_issue is None:
        raise InvalidRequestError("the QR code has no issue date: type the MRZ or the CAN")
    try:
        expiries = expiry_candidates(qr.date_of_birth, qr.date_of_issue)
    except DataFormatError as exc:
        raise InvalidRequestError(f"{exc.message}: type the MRZ or the CAN") from exc
    number, birth = qr.id_number[-9:], _yymmdd(qr.date_of_birth)
    return QrKey(tuple(MrzKey(number, birth, expiry) for expiry in expiries))


def key_from_qr_text(text: str) -> QrKey:
    """Parse the QR text (``qr.parse_cccd_qr``) and derive its keys. A payload that is not a
    CCCD's QR code is a bad request. The text is personal data: it never reaches an error."""
    try:
        qr = parse_cccd_qr(text)
    except DataFormatError as exc:
        raise InvalidRequestError(f"the QR code is not a CCCD's: {exc.message}") from exc
    return key_from_card_qr(qr)
