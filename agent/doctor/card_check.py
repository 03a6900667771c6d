"""Read the installer's test card on whichever reader holds it, and judge the read.

A counter's dual-interface reader shows up as two or three readers (contact, contactless,
SAM): the card is read on the one that holds it. When none does, the installer is asked to
insert it and the doctor waits for the reader's ``card inserted`` event. A read passes only
with a VALID passive-authentication verdict; nothing personal from the card is reported.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from dataclasses import dataclass

import grpc

from agent.client import AgentClient
from agent.doctor.checks import Outcome
from agent.doctor.prompts import Installer
from centre.agent.v1 import common_pb2 as cpb
from centre.agent.v1 import devices_pb2 as dpb
from centre.agent.v1 import idcard_pb2 as ipb

REASON_KEY = "centre-error-reason"
PACKAGED_CSCA_DIR = "/etc/centre-agent/csca"


@dataclass(frozen=True)
class CardKey:
    mrz: tuple[str, str, str] | None = None  # document number, birth date, expiry date
    can: str = ""


def error_reason(exc: grpc.aio.AioRpcError) -> str:
    for key, value in exc.trailing_metadata() or ():
        if key == REASON_KEY:
            return str(value)
    return exc.code().name


def describe_error(exc: grpc.aio.AioRpcError) -> str:
    """``REASON: message``, as the agent words it."""
    reason, details = error_reason(exc), exc.details() or ""
    return details if details.startswith(f"{reason}:") else f"{reason}: {details}".strip()


def explain_passive(read: ipb.ReadCardResponse, csca_dir: str) -> tuple[Outcome, str]:
    """PASS for a VALID passive verdict; else FAIL with the reason and, for an unknown issuer, the fix."""
    verification = read.verification
    verdict = ipb.Verdict.Name(verification.passive).removeprefix("VERDICT_").lower()
    facts = f"{read.access_protocol}, DGs {list(read.data_groups_read)}, passive {verdict}"
    if verification.passive == ipb.VERDICT_VALID:
        return Outcome.PASS, facts
    # details are "check: note" for every check; the verdict at stake is the passive one
    notes = [d.removeprefix("passive:").strip() for d in verification.details if d.startswith("passive:")]
    notes = notes or list(verification.details)
    detail = f"{facts}: {'; '.join(notes) or 'no detail'}"
    if verification.passive == ipb.VERDICT_UNKNOWN_ISSUER:
        issuer = next((d.rsplit("DS issuer ", 1)[1] for d in notes if "DS issuer " in d), "")
        country = re.search(r"(?:^|,)\s*C=([A-Za-z]{2,3})\b", issuer)
        which = "the CSCA certificate" + (f" of {issuer}" if issuer else " of the card's issuing state") + \
            (f" (country {country.group(1)})" if country else "")
        where = (f"in {csca_dir} ([idcard] csca_dir)" if csca_dir
                 else f"in a directory set as [idcard] csca_dir (the package uses {PACKAGED_CSCA_DIR})")
        detail += (f". Install {which}, or an ICAO master list holding it, as a PEM or DER file {where}, "
                   "then restart the agent; or, on an enrolled PC, import it at the gateway "
                   "(`centre-gateway trust import FILE`): the agent fetches it by itself")
    return Outcome.FAIL, detail


class _CardEvents:
    """``card inserted`` events of the ID-card readers, collected from before the first read."""

    def __init__(self, client: AgentClient) -> None:
        self._queue: asyncio.Queue[str] = asyncio.Queue()
        self._live = asyncio.Event()
        self._call = client.devices.WatchEvents(dpb.WatchEventsRequest(families=[cpb.DEVICE_FAMILY_IDCARD],
                                                                       initial_snapshot=True))
        self._task = asyncio.ensure_future(self._pump(self._call))

    async def _pump(self, stream: grpc.aio.UnaryStreamCall[dpb.WatchEventsRequest, dpb.Event]) -> None:
        with contextlib.suppress(grpc.aio.AioRpcError, asyncio.CancelledError):
            async for event in stream:
                self._live.set()  # the snapshot came: no insertion from now on is missed
                if event.kind == dpb.EVENT_KIND_CARD_INSERTED:
                    self._queue.put_nowait(event.device_id)
        self._live.set()

    async def live(self) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._live.wait(), 10)

    async def next_insert(self, readers: set[str], wait_s: float) -> str | None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_s
        while (left := deadline - loop.time()) > 0:
            try:
                device_id = await asyncio.wait_for(self._queue.get(), left)
            except TimeoutError:
                return None
            if device_id in readers:
                return device_id
        return None

    async def close(self) -> None:
        self._call.cancel()
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


async def read_test_card(client: AgentClient, readers: list[cpb.Device], key: CardKey, installer: Installer,
                         wait_s: float, csca_dir: str) -> tuple[Outcome, str]:
    """Read the test card on the reader that holds it (asking for it when none does)."""
    if not key.mrz and not key.can:
        return Outcome.WARN, "not read: give --can or --doc-number/--birth-date/--expiry-date of a test card"
    names = {d.id: d.name for d in readers}

    async def read(device_id: str) -> ipb.ReadCardResponse:
        request = ipb.ReadCardRequest(device=cpb.DeviceRef(device_id=device_id), skip_face=False)
        if key.can:
            request.can = key.can
        elif key.mrz:
            doc, birth, expiry = key.mrz
            request.mrz.CopyFrom(ipb.MrzKey(document_number=doc, date_of_birth=birth, date_of_expiry=expiry))
        return await client.idcard.ReadCard(request, timeout=60)

    events = _CardEvents(client)
    errors: dict[str, str] = {}
    try:
        await events.live()
        for device_id in names:
            try:
                response = await read(device_id)
            except grpc.aio.AioRpcError as exc:
                reason = error_reason(exc)
                if reason == "ACCESS_DENIED":  # the card is there, the key given is not its key
                    return Outcome.FAIL, f"{names[device_id]}: {describe_error(exc)} (is it the test card's key?)"
                if reason != "NO_CARD":  # e.g. a SAM in its slot: the test card may still come elsewhere
                    errors[device_id] = describe_error(exc)
                continue
            return _on(names[device_id], explain_passive(response, csca_dir))
        installer.ask("insert the test card into the ID-card reader" + ("s" if len(names) > 1 else ""), wait_s)
        inserted = await events.next_insert(set(names), wait_s)
        if inserted is None:
            tried = "; ".join(f"{names[d]}: {e}" for d, e in errors.items())
            return Outcome.FAIL, f"no test card was inserted within {wait_s:g} s" + (f" ({tried})" if tried else "")
        try:
            response = await read(inserted)
        except grpc.aio.AioRpcError as exc:
            return Outcome.FAIL, f"{names[inserted]}: {describe_error(exc)}"
        return _on(names[inserted], explain_passive(response, csca_dir))
    finally:
        await events.close()


def _on(reader: str, result: tuple[Outcome, str]) -> tuple[Outcome, str]:
    return result[0], f"{result[1]} (on {reader})"
