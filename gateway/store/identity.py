"""Provisioning records: centres, enrolment tokens, enrolled agents and their certificates.

Runs on any :class:`FleetStore` (same schema via migration 2, same ``?`` SQL). Each public
method is one transaction on the store's own worker (``FleetStore._run``). Enrolment is
decided and recorded in one transaction, so two PCs racing for the last use of a token
cannot both win (the decrement is conditional on ``uses_left > 0``).
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

from agent.errors import AgentError, ForbiddenError, InvalidRequestError, NotFoundError, UnauthenticatedError
from gateway.store.base import FleetStore, Tx

T = TypeVar("T")

ACTIVE, PENDING, REVOKED = "active", "pending", "revoked"
_CODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Machine:
    machine_id: str
    hostname: str
    serial: str


@dataclass(frozen=True, slots=True)
class Assigned:
    """What the gateway decided for an enrolling PC; the caller signs a certificate for it."""

    agent_id: str
    centre: str
    province: str
    status: str


@dataclass(frozen=True, slots=True)
class IssuedCert:
    serial: str
    spki: str
    not_after_ms: int


@dataclass(frozen=True, slots=True)
class EnrolmentRow:
    agent_id: str
    centre: str
    province: str
    machine: Machine
    status: str
    flags: tuple[str, ...]
    enrolled_ms: int
    renewed_ms: int
    not_after_ms: int
    doctor: dict[str, Any] = field(default_factory=dict)
    doctor_ms: int = 0


@dataclass(frozen=True, slots=True)
class AccessList:
    """What the mTLS check needs on every call: revoked serials and each agent's status."""

    revoked_serials: frozenset[str]
    status: dict[str, str]


class IdentityRegistry:
    def __init__(self, store: FleetStore) -> None:
        self.store = store

    async def _unit(self, work: Callable[[Tx], Coroutine[Any, Any, T]]) -> T:
        async def run() -> T:
            async with self.store.transaction() as tx:
                return await work(tx)
        return await self.store._run(run)

    # -- centres, tokens, pre-registration ---------------------------------------------------------

    async def add_centre(self, code: str, name: str, province: str, now_ms: int) -> None:
        if not _CODE.match(code) or not _CODE.match(province) or not name.strip():
            raise InvalidRequestError("centre: code and province must be [A-Za-z0-9._-], name non-empty")

        async def work(tx: Tx) -> None:
            if await tx.fetchone("SELECT code FROM centres WHERE code = ?", (code,)):
                raise InvalidRequestError(f"centre {code} already exists")
            await tx.execute("INSERT INTO centres (code, name, province, created_ms) VALUES (?,?,?,?)",
                             (code, name.strip(), province, now_ms))
        await self._unit(work)

    async def centres(self) -> list[tuple[str, str, str]]:
        async def work(tx: Tx) -> list[tuple[str, str, str]]:
            rows = await tx.fetchall("SELECT code, name, province FROM centres ORDER BY code")
            return [(str(r[0]), str(r[1]), str(r[2])) for r in rows]
        return await self._unit(work)

    async def create_token(self, centre: str, uses: int, expires_ms: int, now_ms: int) -> tuple[str, str]:
        """Returns (token, token id). Only the SHA-256 of the token is stored."""
        if not 1 <= uses <= 1000:
            raise InvalidRequestError("token: uses must be 1-1000")
        token = "cen1_" + secrets.token_urlsafe(32)
        digest = token_hash(token)
        token_id = digest[:12]

        async def work(tx: Tx) -> None:
            if not await tx.fetchone("SELECT code FROM centres WHERE code = ?", (centre,)):
                raise NotFoundError(f"centre {centre} not registered (centre-gateway centre add)")
            await tx.execute("INSERT INTO enrol_tokens (token_hash, token_id, centre, uses_left, expires_ms, "
                             "revoked, created_ms) VALUES (?,?,?,?,?,0,?)",
                             (digest, token_id, centre, uses, expires_ms, now_ms))
        await self._unit(work)
        return token, token_id

    async def revoke_token(self, token_id: str) -> None:
        async def work(tx: Tx) -> None:
            if not await tx.fetchone("SELECT token_id FROM enrol_tokens WHERE token_id = ?", (token_id,)):
                raise NotFoundError(f"no token {token_id}")
            await tx.execute("UPDATE enrol_tokens SET revoked = 1 WHERE token_id = ?", (token_id,))
        await self._unit(work)

    async def preregister(self, serial: str, centre: str, now_ms: int) -> None:
        async def work(tx: Tx) -> None:
            if not await tx.fetchone("SELECT code FROM centres WHERE code = ?", (centre,)):
                raise NotFoundError(f"centre {centre} not registered")
            await tx.execute("INSERT INTO preregistered (serial, centre, created_ms) VALUES (?,?,?) "
                             "ON CONFLICT (serial) DO UPDATE SET centre = excluded.centre", (serial, centre, now_ms))
        await self._unit(work)

    # -- enrolment ---------------------------------------------------------------------------------

    async def enrol(self, token: str, machine: Machine, spki: str, expected_centre: str, now_ms: int,
                    issue: Callable[[Assigned], IssuedCert]) -> tuple[Assigned, IssuedCert]:
        """Check the token and the machine, assign an identity, have ``issue`` sign it, record it.

        A refused enrolment consumes no use of the token; a clone attempt flags the record it
        collided with (committed even though the enrolment is refused)."""
        digest = token_hash(token)

        async def work(tx: Tx) -> tuple[Assigned, IssuedCert] | AgentError:
            # row lock (PostgreSQL): concurrent enrolments with one token queue here, so the last
            # use cannot be spent twice; SQLite's BEGIN IMMEDIATE already serialises writers
            row = await tx.fetchone("SELECT centre, uses_left, expires_ms, revoked FROM enrol_tokens "  # noqa: S608 - constant SQL
                                    f"WHERE token_hash = ?{self.store.row_lock}", (digest,))
            if row is None:
                return UnauthenticatedError("unknown enrolment token")
            centre, uses_left, expires_ms, revoked = str(row[0]), int(row[1]), int(row[2]), int(row[3])
            if revoked:
                return ForbiddenError("enrolment token revoked")
            if expires_ms <= now_ms:
                return ForbiddenError("enrolment token expired")
            if uses_left <= 0:
                return ForbiddenError("enrolment token has no uses left")
            if expected_centre and expected_centre != centre:
                return ForbiddenError("enrolment token belongs to another centre")
            centre_row = await tx.fetchone("SELECT province FROM centres WHERE code = ?", (centre,))
            assert centre_row is not None  # foreign key
            province = str(centre_row[0])
            holder = await tx.fetchone("SELECT agent_id FROM certificates WHERE spki = ?", (spki,))
            if holder is not None:
                await self._flag(tx, str(holder[0]), "clone-key")
                return ForbiddenError("this key is already enrolled (replayed enrolment or cloned PC)")
            status = PENDING
            flags: list[str] = []
            if machine.serial:
                pre = await tx.fetchone("SELECT centre FROM preregistered WHERE serial = ?", (machine.serial,))
                if pre is not None:
                    if str(pre[0]) != centre:
                        return ForbiddenError("this PC is pre-registered for another centre")
                    status = ACTIVE
            twins = await tx.fetchall("SELECT agent_id FROM enrolments WHERE machine_id = ? AND status != ?",
                                      (machine.machine_id, REVOKED))
            for twin in twins:
                await self._flag(tx, str(twin[0]), "clone-suspect")
                flags.append(f"clone-of:{twin[0]}")
                status = PENDING  # an operator decides: reinstall (approve + revoke the old) or clone
            agent_id = await self._next_agent_id(tx, centre)
            assigned = Assigned(agent_id, centre, province, status)
            cert = issue(assigned)
            await tx.execute("UPDATE enrol_tokens SET uses_left = uses_left - 1 WHERE token_hash = ? "
                             "AND uses_left > 0", (digest,))
            await tx.execute("INSERT INTO enrolments (agent_id, centre, province, machine_id, hostname, serial, "
                             "status, flags, enrolled_ms) VALUES (?,?,?,?,?,?,?,?,?)",
                             (agent_id, centre, province, machine.machine_id, machine.hostname, machine.serial,
                              status, ",".join(flags), now_ms))
            await self._record_cert(tx, agent_id, cert, now_ms)
            return assigned, cert

        result = await self._unit(work)
        if isinstance(result, AgentError):
            raise result
        return result

    async def _next_agent_id(self, tx: Tx, centre: str) -> str:
        row = await tx.fetchone("SELECT COUNT(*) FROM enrolments WHERE centre = ?", (centre,))
        n = int(row[0]) if row else 0
        while True:
            n += 1
            candidate = f"{centre.lower()}-{n:03d}"
            if not await tx.fetchone("SELECT agent_id FROM enrolments WHERE agent_id = ?", (candidate,)):
                return candidate

    async def _flag(self, tx: Tx, agent_id: str, flag: str) -> None:
        row = await tx.fetchone("SELECT flags FROM enrolments WHERE agent_id = ?", (agent_id,))
        if row is None:
            return
        flags = [f for f in str(row[0]).split(",") if f]
        if flag not in flags:
            flags.append(flag)
            await tx.execute("UPDATE enrolments SET flags = ? WHERE agent_id = ?", (",".join(flags), agent_id))

    async def _record_cert(self, tx: Tx, agent_id: str, cert: IssuedCert, now_ms: int) -> None:
        await tx.execute("INSERT INTO certificates (serial, agent_id, spki, not_after_ms, issued_ms, revoked) "
                         "VALUES (?,?,?,?,?,0)", (cert.serial, agent_id, cert.spki, cert.not_after_ms, now_ms))

    async def renew(self, agent_id: str, old_serial: str, spki: str, now_ms: int,
                    issue: Callable[[Assigned], IssuedCert]) -> tuple[Assigned, IssuedCert]:
        """A new certificate for the agent holding certificate ``old_serial`` (checked by the caller)."""
        async def work(tx: Tx) -> tuple[Assigned, IssuedCert] | AgentError:
            row = await tx.fetchone("SELECT c.revoked, e.status, e.centre, e.province FROM certificates c "
                                    "JOIN enrolments e ON e.agent_id = c.agent_id "
                                    "WHERE c.serial = ? AND c.agent_id = ?", (old_serial, agent_id))
            if row is None:
                return UnauthenticatedError("certificate unknown to this gateway")
            if int(row[0]) or str(row[1]) == REVOKED:
                return ForbiddenError("certificate revoked")
            holder = await tx.fetchone("SELECT agent_id FROM certificates WHERE spki = ? AND agent_id != ?",
                                       (spki, agent_id))
            if holder is not None:
                await self._flag(tx, str(holder[0]), "clone-key")
                return ForbiddenError("this key belongs to another agent")
            assigned = Assigned(agent_id, str(row[2]), str(row[3]), str(row[1]))
            cert = issue(assigned)
            await self._record_cert(tx, agent_id, cert, now_ms)
            await tx.execute("UPDATE enrolments SET renewed_ms = ? WHERE agent_id = ?", (now_ms, agent_id))
            return assigned, cert

        result = await self._unit(work)
        if isinstance(result, AgentError):
            raise result
        return result

    # -- operator actions --------------------------------------------------------------------------

    async def set_status(self, agent_id: str, status: str) -> None:
        async def work(tx: Tx) -> None:
            row = await tx.fetchone("SELECT status FROM enrolments WHERE agent_id = ?", (agent_id,))
            if row is None:
                raise NotFoundError(f"no enrolled agent {agent_id}")
            if str(row[0]) == REVOKED and status != REVOKED:
                raise ForbiddenError(f"{agent_id} is revoked; enrol the PC again")
            await tx.execute("UPDATE enrolments SET status = ? WHERE agent_id = ?", (status, agent_id))
            if status == REVOKED:
                await tx.execute("UPDATE certificates SET revoked = 1 WHERE agent_id = ?", (agent_id,))
        await self._unit(work)

    async def save_doctor(self, agent_id: str, report: dict[str, Any], now_ms: int) -> None:
        async def work(tx: Tx) -> None:
            await tx.execute("UPDATE enrolments SET doctor = ?, doctor_ms = ? WHERE agent_id = ?",
                             (json.dumps(report, sort_keys=True), now_ms, agent_id))
        await self._unit(work)

    # -- reads -------------------------------------------------------------------------------------

    async def access_list(self) -> AccessList:
        async def work(tx: Tx) -> AccessList:
            revoked = await tx.fetchall("SELECT serial FROM certificates WHERE revoked = 1")
            status = await tx.fetchall("SELECT agent_id, status FROM enrolments")
            return AccessList(frozenset(str(r[0]) for r in revoked), {str(r[0]): str(r[1]) for r in status})
        return await self._unit(work)

    async def enrolments(self, *, pending_only: bool = False) -> list[EnrolmentRow]:
        async def work(tx: Tx) -> list[EnrolmentRow]:
            sql = ("SELECT e.agent_id, e.centre, e.province, e.machine_id, e.hostname, e.serial, e.status, e.flags, "
                   "e.enrolled_ms, e.renewed_ms, e.doctor, e.doctor_ms, "
                   "(SELECT MAX(c.not_after_ms) FROM certificates c WHERE c.agent_id = e.agent_id) "
                   "FROM enrolments e")
            params: tuple[Any, ...] = ()
            if pending_only:
                sql += " WHERE e.status = ?"
                params = (PENDING,)
            rows = await tx.fetchall(sql + " ORDER BY e.centre, e.agent_id", params)
            return [EnrolmentRow(str(r[0]), str(r[1]), str(r[2]), Machine(str(r[3]), str(r[4]), str(r[5])),
                                 str(r[6]), tuple(f for f in str(r[7]).split(",") if f), int(r[8]), int(r[9]),
                                 int(r[12] or 0), json.loads(r[10]) if r[10] else {}, int(r[11]))
                    for r in rows]
        return await self._unit(work)
