"""AgentService: version, health, configuration summary."""

from __future__ import annotations

import platform
import time
from collections import Counter

from google.protobuf.descriptor import ServiceDescriptor

from agent.api import convert
from agent.api.call import CallInfo
from agent.core.runtime import AgentRuntime
from centre.agent.v1 import agent_pb2 as pb


class AgentServiceCore:
    descriptor: ServiceDescriptor = pb.DESCRIPTOR.services_by_name["AgentService"]

    def __init__(self, runtime: AgentRuntime, listen: dict[str, str]) -> None:
        self._rt = runtime
        self._listen = listen

    async def GetVersion(self, request: pb.GetVersionRequest, call: CallInfo) -> pb.Version:
        return pb.Version(agent_version=self._rt.version, api_version="centre.agent.v1",
                          python_version=platform.python_version())

    async def GetHealth(self, request: pb.GetHealthRequest, call: CallInfo) -> pb.AgentHealth:
        counts = Counter((i.family, i.state) for i in self._rt.registry.list(include_gone=True))
        trust = self._rt.trust.health()
        msg = pb.AgentHealth(
            serving=True, uptime_seconds=int(time.time() - self._rt.started_at),
            devices=[pb.FamilyCount(family=convert.FAMILY_TO_PB[f], state=convert.STATE_TO_PB[s], count=n)
                     for (f, s), n in sorted(counts.items())],
            leases_held=self._rt.leases.held, event_clients=self._rt.bus.subscriber_count,
            backends=sorted(n for n, st in self._rt.backend_status.items() if st.running),
            backend_errors=self._rt.backend_problems(),
            simulate=self._rt.simulate, trust_bundle_version=trust.version,
            trust_bundle_age_seconds=int(trust.age_seconds))
        msg.started_at.CopyFrom(convert.timestamp(self._rt.started_at))
        return msg

    async def GetConfigSummary(self, request: pb.GetConfigSummaryRequest, call: CallInfo) -> pb.ConfigSummary:
        cfg = self._rt.config
        return pb.ConfigSummary(config_file=cfg.source, config_sha256=cfg.digest(),
                                socket_path=self._listen.get("socket", ""), tcp_address=self._listen.get("tcp", ""),
                                metrics_address=self._listen.get("metrics", ""),
                                backends=self._rt.backend_names(), simulate=self._rt.simulate)
