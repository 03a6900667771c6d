"""Job bookkeeping shared by print and scan jobs: ids, idempotency keys, recent history."""

from __future__ import annotations

import secrets
import time
from collections import OrderedDict
from typing import Generic, TypeVar

from agent.errors import NotFoundError

J = TypeVar("J")


def new_job_id(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(6)}"


class JobTable(Generic[J]):
    """Recent jobs by id, bounded; and ``(client, request_id) -> job id`` for idempotent submits."""

    def __init__(self, keep: int = 500, idempotency_ttl: float = 3600.0) -> None:
        self._jobs: OrderedDict[str, J] = OrderedDict()
        self._keys: OrderedDict[tuple[str, str], tuple[str, float]] = OrderedDict()
        self._keep = keep
        self._ttl = idempotency_ttl

    def add(self, job_id: str, job: J, client_id: str = "", request_id: str = "") -> None:
        self._jobs[job_id] = job
        while len(self._jobs) > self._keep:
            self._jobs.popitem(last=False)
        if request_id:
            self._keys[(client_id, request_id)] = (job_id, time.monotonic())
            self._expire_keys()

    def by_request(self, client_id: str, request_id: str) -> J | None:
        if not request_id:
            return None
        self._expire_keys()
        hit = self._keys.get((client_id, request_id))
        return self._jobs.get(hit[0]) if hit else None

    def get(self, job_id: str) -> J:
        try:
            return self._jobs[job_id]
        except KeyError:
            raise NotFoundError(f"no job with id {job_id!r}") from None

    def values(self) -> list[J]:
        return list(self._jobs.values())

    def _expire_keys(self) -> None:
        now = time.monotonic()
        while self._keys:
            key, (_, created) = next(iter(self._keys.items()))
            if now - created < self._ttl and len(self._keys) <= self._keep * 4:
                break
            del self._keys[key]
