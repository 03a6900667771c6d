"""Fetches the gateway's trust bundle over the mTLS uplink (``AgentCheck.GetTrustBundle``).

On start and then every ``[idcard] trust_refresh_seconds``; the version held is sent, so an
unchanged bundle costs one small answer ("not modified"). A failed fetch keeps the last good
copy (:class:`~agent.drivers.idcard.trust_bundle.DistributedTrust`) and is retried sooner.
"""

from __future__ import annotations

import asyncio
import logging
import time

import grpc
from grpc import aio

from agent.drivers.idcard.trust_bundle import DistributedTrust, TrustBundle
from agent.uplink.credentials import UplinkCredentials
from centre.gateway.v1 import enrollment_pb2, enrollment_pb2_grpc

log = logging.getLogger(__name__)

#: After a failed fetch, the next try comes after at most this long.
RETRY_SECONDS = 30.0


class TrustFetcher:
    def __init__(self, credentials: UplinkCredentials, target: str, trust: DistributedTrust,
                 refresh_seconds: float, *, call_timeout: float = 30.0) -> None:
        self._credentials = credentials
        self._target = target
        self._trust = trust
        self._refresh = refresh_seconds
        self._timeout = call_timeout

    async def fetch_once(self) -> bool:
        """One fetch; True when the gateway answered (new bundle or not modified)."""
        credentials = self._credentials.channel_credentials()
        if credentials is None:
            return False  # the bundle is served on the mTLS port only
        held = self._trust.current
        try:
            async with aio.secure_channel(self._target, credentials) as channel:
                reply = await enrollment_pb2_grpc.AgentCheckStub(channel).GetTrustBundle(
                    enrollment_pb2.GetTrustBundleRequest(known_version=held.version if held else ""),
                    timeout=self._timeout)
        except grpc.RpcError as exc:
            log.warning("trust bundle fetch from %s failed: %s", self._target, exc.code().name)
            return False
        now = time.time()
        loop = asyncio.get_running_loop()
        if reply.not_modified:
            await loop.run_in_executor(None, self._trust.confirmed, reply.version, now)
        else:
            bundle = TrustBundle(reply.version, tuple(reply.csca_certificates), tuple(reply.crls), now)
            await loop.run_in_executor(None, self._trust.replace, bundle)
        return True

    async def run(self) -> None:
        while True:
            try:
                ok = await self.fetch_once()
            except OSError as exc:  # the state directory refused the new copy: keep the old one
                log.error("trust bundle not saved: %s", exc.strerror)
                ok = False
            await asyncio.sleep(self._refresh if ok else min(self._refresh, RETRY_SECONDS))
