"""``centre-agent run``: the daemon's lifecycle."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from dataclasses import dataclass, field

from agent import stop_signals
from agent.api.attestation import Attestor
from agent.api.connect_server import ConnectServer
from agent.api.grpc_server import GrpcServer, ServiceCore
from agent.api.services.agentinfo import AgentServiceCore
from agent.api.services.barcode import BarcodeServiceCore
from agent.api.services.devices import DeviceServiceCore
from agent.api.services.fingerprint import FingerprintServiceCore
from agent.api.services.idcard import IdCardServiceCore
from agent.api.services.printer import PrinterServiceCore
from agent.api.services.scanner import ScannerServiceCore
from agent.config import AgentConfig, WebSection, check_loopback_address
from agent.core.runtime import AgentRuntime
from agent.errors import ConfigError
from agent.provisioning.discovery import Advertiser, default_advert
from agent.provisioning.identity import IdentityStore
from agent.systemd_notify import notify_service_manager
from agent.uplink.service import Uplink
from agent.uplink.wiring import build_uplink

log = logging.getLogger(__name__)


@dataclass
class RunningAgent:
    runtime: AgentRuntime
    server: GrpcServer
    listen: dict[str, str] = field(default_factory=dict)
    web: ConnectServer | None = None
    uplink: Uplink | None = None
    advertiser: Advertiser | None = None

    async def stop(self) -> None:
        if self.advertiser is not None:
            await self.advertiser.close()
        grace = self.runtime.config.agent.shutdown_grace_seconds
        if self.web is not None:
            await self.web.stop(grace)
        await self.server.stop(grace)
        if self.uplink is not None:
            await self.uplink.stop()
        await self.runtime.stop()


async def start_agent(config: AgentConfig, simulate: bool = False) -> RunningAgent:
    runtime = AgentRuntime(config, simulate=simulate)
    listen: dict[str, str] = {}
    attestor = Attestor(config.agent.state_dir)
    cores: list[ServiceCore] = [
        DeviceServiceCore(runtime), AgentServiceCore(runtime, listen), IdCardServiceCore(runtime, attestor),
        FingerprintServiceCore(runtime), ScannerServiceCore(runtime), PrinterServiceCore(runtime),
        BarcodeServiceCore(runtime)]
    server = GrpcServer(cores, runtime.metrics, config.agent.max_message_bytes)
    if config.agent.socket:
        server.listen_unix(config.agent.socket, int(config.agent.socket_mode, 8))
        listen["socket"] = config.agent.socket
    if config.agent.tcp:
        host, port = check_loopback_address(config.agent.tcp, "agent.tcp")
        listen["tcp"] = f"{host}:{server.listen_tcp(host, port)}"
    web: ConnectServer | None = None
    if config.web.listen:
        web = ConnectServer(cores, runtime.metrics, config.web, config.agent.state_dir, demo=simulate)
        try:
            listen["web"] = web.listen()
        except ConfigError:
            if config.web.listen != WebSection().listen:
                raise  # an address the operator chose must work
            # the built-in default port is taken (another agent, a developer's test): run without browsers
            log.warning("browser listener off: default address %s is in use", config.web.listen)
            web = None
    if config.metrics.listen:
        host, port = check_loopback_address(config.metrics.listen, "metrics.listen")
        listen["metrics"] = f"{host}:{runtime.metrics.serve(host, port)}"
    runtime.metrics.leases.set_function(lambda: runtime.leases.held)
    runtime.metrics.event_clients.set_function(lambda: runtime.bus.subscriber_count)
    uplink = build_uplink(runtime)
    await runtime.start()
    await server.start()
    if web is not None:
        await web.start()
    if uplink is not None:
        uplink.start()
        listen["uplink"] = uplink.reporter.settings.target
    advertiser = await _advertise(runtime) if config.discovery.advertise else None
    if advertiser is not None:
        listen["mdns"] = advertiser.advert.host
    log.info("centre-agent %s serving on %s%s", runtime.version,
             ", ".join(f"{k}={v}" for k, v in listen.items()), " (simulated devices)" if simulate else "")
    return RunningAgent(runtime, server, listen, web, uplink, advertiser)


async def _advertise(runtime: AgentRuntime) -> Advertiser | None:
    """Announce this agent on the LAN (no secrets; trust never comes from it). Failure is logged, not fatal."""
    store = IdentityStore(runtime.state_dir)
    try:
        info = store.info() if store.present else None
    except ConfigError:
        info = None
    advert = default_advert(runtime.version, info is not None, info.centre if info else runtime.config.uplink.centre,
                            info.agent_id if info else "", list(runtime.config.discovery.interfaces))
    advertiser = Advertiser(advert)
    try:
        await advertiser.start(await runtime.zeroconf.get())
    except (OSError, ValueError, RuntimeError) as exc:  # zeroconf.Error derives from Exception
        log.warning("mDNS advertisement failed: %s", type(exc).__name__)
        return None
    return advertiser


async def run_agent(config: AgentConfig, simulate: bool = False) -> None:
    agent = await start_agent(config, simulate)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    stop_signals.install(loop, {signal.SIGTERM: stop.set, signal.SIGINT: stop.set})
    # machine-readable readiness line for supervisors and tests
    print(f"centre-agent ready pid={os.getpid()} " + " ".join(f"{k}={v}" for k, v in agent.listen.items()),
          flush=True)
    try:
        async with notify_service_manager("serving " + " ".join(f"{k}={v}" for k, v in agent.listen.items())):
            await stop.wait()
    finally:
        log.info("stopping")
        try:
            await agent.stop()
        finally:
            stop_signals.uninstall()
