"""Reading one eMRTD / CCCD end to end: access control (PACE if EF.CardAccess offers it,
else BAC), the data groups, and every authenticity check.

``read_document`` is the one entry point the reader devices (PC/SC and simulated) call.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Generic, TypeVar

from agent.domain.idcard import (
    AccessKey,
    CanKey,
    CardRead,
    FaceImage,
    MrzKey,
    QrKey,
    ReadOptions,
    Verdict,
    Verification,
)
from agent.drivers.idcard import lds
from agent.drivers.idcard.active_auth import active_authentication
from agent.drivers.idcard.apdu import CommandApdu
from agent.drivers.idcard.bac import perform_bac
from agent.drivers.idcard.channel import CardChannel
from agent.drivers.idcard.chip_auth import chip_authentication
from agent.drivers.idcard.dg13 import Dg13, parse_dg13
from agent.drivers.idcard.face import parse_dg2
from agent.drivers.idcard.holder import data_verdict, personal_data
from agent.drivers.idcard.mrz import validate_key
from agent.drivers.idcard.pace import perform_pace
from agent.drivers.idcard.qr_key import MAX_CANDIDATES
from agent.drivers.idcard.reading import (
    EF_CARD_ACCESS,
    EF_COM,
    EF_SOD,
    FileReader,
    PendingContent,
    data_group_file,
)
from agent.drivers.idcard.security_infos import PaceInfo, SecurityInfos, parse_security_infos
from agent.drivers.idcard.transport import CardTransport
from agent.drivers.idcard.trust_store import TrustStore
from agent.drivers.idcard.verification import CheckResult, SodCheck, check_sod, passive_verdict
from agent.errors import (
    AccessDeniedError,
    DataFormatError,
    DeviceProtocolError,
    InvalidRequestError,
    NotSupportedError,
)

#: Data groups read when the card lists them, DG2 (the face, most of the bytes) apart and
#: last. DG3/DG4 need terminal authentication; DG14 is read before, for chip authentication.
READ_GROUPS = (1, 13, 15)

T = TypeVar("T")

#: EF.SOD's signature and chain, DG2's secure-messaging check and decryption and the DG2/DG13
#: parsers run here while the card is busy with later commands (the exchange itself waits in
#: pcscd or the card with the GIL released). Pure CPU work on immutable bytes; two threads for
#: the whole process.
_VERIFY_POOL = ThreadPoolExecutor(max_workers=2, thread_name_prefix="idcard-verify")


@dataclass(frozen=True, slots=True)
class _Outcome(Generic[T]):
    """A background step's value or exception (never left for asyncio to log)."""

    value: T | None
    error: Exception | None

    def get(self) -> T:
        if self.error is not None:
            raise self.error
        assert self.value is not None
        return self.value


def _attempt(fn: Callable[..., T], *args: object) -> _Outcome[T]:
    try:
        return _Outcome(fn(*args), None)
    except Exception as exc:  # handed back to the session, which decides what it means
        return _Outcome(None, exc)


def _finish_face(pending: PendingContent) -> tuple[bytes, _Outcome[FaceImage]]:
    """DG2's closing chunk verified and decrypted (errors propagate), then parsed."""
    dg2 = pending.finish()
    return dg2, _attempt(parse_dg2, dg2)


def _in_background(fn: Callable[..., T], *args: object) -> asyncio.Future[_Outcome[T]]:
    return asyncio.get_running_loop().run_in_executor(_VERIFY_POOL, _attempt, fn, *args)


async def _card_access(channel: CardChannel) -> SecurityInfos | None:
    """EF.CardAccess, read without secure messaging before access control."""
    answer = await channel.send_plain(CommandApdu(0x00, 0xB0, 0x80 | EF_CARD_ACCESS.sfi, 0x00, le=256))
    if answer.sw not in (0x9000, 0x6282) or not answer.data:
        return None
    try:
        return parse_security_infos(answer.data)
    except DataFormatError:
        return None  # an unreadable EF.CardAccess: fall back to BAC, as 9303 allows


def choose_pace(infos: SecurityInfos | None) -> PaceInfo | None:
    """The strongest supported PACE protocol the card offers."""
    if infos is None:
        return None
    usable = [p for p in infos.pace if p.supported]
    if not usable:
        return None
    return max(usable, key=lambda p: (p.suite.key_length, p.suite.block_size))


async def _open(channel: CardChannel, files: FileReader, key: MrzKey | CanKey, pace_info: PaceInfo | None) -> str:
    """Access control and application selection; returns the protocol used."""
    if pace_info is not None:
        try:
            await perform_pace(channel, pace_info, key)
        except DeviceProtocolError:
            # PACE broke for a reason other than the key (a wrong key is AccessDeniedError and
            # is never retried): with the MRZ, fall back to BAC as 9303 permits.
            if isinstance(key, CanKey):
                raise
            channel.sm = None
        else:
            await files.select_application()
            return "PACE"
    if isinstance(key, CanKey):
        raise NotSupportedError("the card offers no PACE, so a CAN cannot open it; use the MRZ")
    await files.select_application()
    await perform_bac(channel, key)
    return "BAC"


async def _open_with(channel: CardChannel, files: FileReader, key: AccessKey,
                     pace_info: PaceInfo | None) -> tuple[str, MrzKey | CanKey]:
    """Access control with ``key``; returns the protocol and the key the card took.

    A key derived from the QR code (:class:`QrKey`) is a short, fixed list of candidates (at
    most ``qr_key.MAX_CANDIDATES``), each tried once in its order: a refusal moves on to the
    next one, a blocked card stops at once, and once every candidate is refused the read
    fails with ACCESS_DENIED and a hint to type the MRZ or the CAN.
    """
    if not isinstance(key, QrKey):
        return await _open(channel, files, key, pace_info), key
    candidates = key.candidates[:MAX_CANDIDATES]
    if not candidates:
        raise InvalidRequestError("the QR code gave no access key: type the MRZ or the CAN")
    for candidate in candidates:
        try:
            return await _open(channel, files, candidate, pace_info), candidate
        except AccessDeniedError as error:
            if error.reason != AccessDeniedError.reason:  # CARD_BLOCKED: no further attempt
                raise
            channel.sm = None
    raise AccessDeniedError(
        f"the card refused the access key derived from its QR code ({len(candidates)} tried): "
        "type the MRZ (document number, birth and expiry dates) or the CAN")


async def read_document(transport: CardTransport, key: AccessKey, options: ReadOptions,
                        trust: TrustStore | None, *, now: dt.datetime | None = None) -> CardRead:
    """Open the card with ``key``, read it and verify it.

    Chip authentication, where DG14 offers it, runs right after access control, so the
    personal data travels under its stronger session keys (9303 Part 11, 6.2); if it fails,
    access control is redone with the same (correct) key and the read goes on.

    Raises AccessDeniedError for a wrong key (one attempt, never retried; a key derived
    from the QR code tries its few candidates in order, see :func:`_open_with`),
    NotSupportedError for a CAN on a card without PACE, DeviceProtocolError /
    DataFormatError for malformed answers; transport errors pass through.
    """
    for mrz_key in key.candidates if isinstance(key, QrKey) else (key,):
        if isinstance(mrz_key, MrzKey):
            validate_key(mrz_key)
    channel = CardChannel(transport)
    files = FileReader(channel)
    pace_info = choose_pace(await _card_access(channel))
    protocol, opened_with = await _open_with(channel, files, key, pace_info)

    com_raw = await files.read(EF_COM)
    if com_raw is None:
        raise DeviceProtocolError("the card has no EF.COM")
    com = lds.parse_com(com_raw)
    groups: dict[int, bytes] = {}
    details: list[str] = []

    dg14_infos: SecurityInfos | None = None
    if 14 in com.data_groups:
        dg14 = await files.read(data_group_file(14))
        if dg14 is not None:
            groups[14] = dg14
            try:
                dg14_infos = parse_security_infos(lds.unwrap(dg14, 14))
            except DataFormatError:
                details.append("DG14 malformed")
    if not options.chip_authentication:
        chip = CheckResult(Verdict.NOT_SUPPORTED, ["chip authentication not requested"])
    elif 14 in groups and dg14_infos is None:
        chip = CheckResult(Verdict.INVALID, ["DG14 malformed"])
    else:
        chip = await chip_authentication(channel, dg14_infos)
        if chip.verdict is Verdict.INVALID:
            channel.sm = None  # the chip dropped the channel: open it again, same key
            await _open(channel, files, opened_with, pace_info)

    sod_raw = await files.read(EF_SOD)
    # Background work is timed to the two long waits on the card, and sized to fit them: a
    # Python-heavy step holds the GIL, so a reply that comes back while one runs waits for it,
    # and any step takes CPU the card's side (pcscd, a reader driver) may want during short
    # exchanges. DG2 is read last: while its bulk is on the wire, EF.SOD's signature and chain
    # and the DG13 parser run; while the card computes the AA signature, DG2's
    # secure-messaging check, decryption (the cipher releases the GIL) and face parser.
    sod_check: asyncio.Future[_Outcome[SodCheck]] | None = None
    dg13_parse: asyncio.Future[_Outcome[Dg13]] | None = None

    def start_verifying() -> None:
        nonlocal sod_check, dg13_parse
        if sod_check is None:
            sod_check = _in_background(check_sod, sod_raw, trust, now)
        if dg13_parse is None and 13 in groups:
            dg13_parse = _in_background(parse_dg13, groups[13])

    for number in READ_GROUPS:
        if number == 14 or (number not in com.data_groups and number != 1):
            continue
        content = await files.read(data_group_file(number))
        if content is not None:
            groups[number] = content
    if 1 not in groups:
        raise DeviceProtocolError("the card has no DG1")

    pending_face: PendingContent | None = None
    if options.include_face and 2 in com.data_groups:
        pending_face = await files.read_later(data_group_file(2), while_waiting=start_verifying)
    start_verifying()
    mrz = lds.parse_dg1(groups[1])  # without the MRZ there is no document to report

    face_read: asyncio.Future[_Outcome[tuple[bytes, _Outcome[FaceImage]]]] | None = None

    def start_face() -> None:
        nonlocal face_read
        if face_read is None and pending_face is not None:
            face_read = _in_background(_finish_face, pending_face)

    if options.active_authentication:
        active = await active_authentication(channel, groups.get(15),
                                             dg14_infos.active_auth_signature_oid if dg14_infos else None,
                                             while_waiting=start_face)
    else:
        active = CheckResult(Verdict.NOT_SUPPORTED, ["active authentication not requested"])
    start_face()

    # A DG13 or face the parser cannot read does not hide the rest of the card: the read is
    # reported with a note and, for DG13, a data verdict (passive authentication still judges
    # the bytes).
    dg13: Dg13 | None = None
    dg13_failure: str | None = None
    if dg13_parse is not None:
        try:
            dg13 = (await dg13_parse).get()
        except DataFormatError as exc:
            dg13_failure = str(exc)  # the parser's messages never carry the data
    data = data_verdict(13 in com.data_groups, dg13, dg13_failure)
    face: FaceImage | None = None
    if face_read is not None:
        dg2, parsed_face = (await face_read).get()  # a DG2 answer that fails its MAC fails the read
        groups[2] = dg2
        try:
            face = parsed_face.get()
        except DataFormatError:
            details.append("DG2 face could not be parsed")
    assert sod_check is not None
    passive = passive_verdict((await sod_check).get(), groups)

    details += [f"passive: {d}" for d in passive.details]
    details += [f"active: {d}" for d in active.details]
    details += [f"chip: {d}" for d in chip.details]
    details += [f"data: {d}" for d in data.details]
    return CardRead(
        personal=personal_data(mrz, dg13),
        face=face,
        verification=Verification(passive.verdict, active.verdict, chip.verdict, tuple(details),
                                  data=data.verdict),
        data_groups_read=tuple(sorted(groups)),
        access_protocol=protocol,
        apdu_count=channel.apdu_count,
        raw_data_groups=dict(groups) if options.include_raw else {},
    )
