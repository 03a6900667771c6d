"""The agent's composition root: builds the core, starts the backends, stops everything."""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

from agent import __version__
from agent.config import AgentConfig, BackendDecision
from agent.core.context import CoreDriverContext, SharedZeroconf
from agent.core.events import EventBus
from agent.core.ids import KnownDeviceStore
from agent.core.leases import LeaseManager
from agent.core.printing import PrinterQueues
from agent.core.registry import DeviceRegistry
from agent.drivers.base import DeviceBackend
from agent.drivers.idcard.trust_bundle import DistributedTrust
from agent.drivers.options import DriverOptions, PcscOptions, SimIdCardOptions
from agent.drivers.presence import PresenceProbe, probe
from agent.drivers.registry import SIMULATED_BACKENDS, load_backend_class
from agent.errors import AgentError, ConfigError
from agent.metrics import AgentMetrics

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class BackendStatus:
    name: str
    running: bool
    error: str = ""


class AgentRuntime:
    """Everything the API layer talks to. Knows nothing of protobuf."""

    def __init__(self, config: AgentConfig, simulate: bool = False, metrics: AgentMetrics | None = None,
                 presence: PresenceProbe = probe) -> None:
        self.config = config
        self.simulate = simulate
        #: every configured backend: runs or not, and why ("auto" resolved once, here)
        self.backend_decisions: list[BackendDecision] = config.backend_decisions(presence, simulate)
        self.version = __version__
        self.started_at = time.time()
        self.state_dir = Path(config.agent.state_dir)
        self.metrics = metrics or AgentMetrics()
        self.bus = EventBus()
        usable = self._state_dir_usable()
        known_path = self.state_dir / "known-devices.json" if usable else None
        #: the gateway's trust bundle (last good copy in the state dir; the uplink refreshes it)
        self.trust = DistributedTrust(self.state_dir if usable else None)
        self.registry = DeviceRegistry(self.bus, KnownDeviceStore(known_path), config.agent.debounce_seconds)
        self.leases = LeaseManager(self.registry, config.agent.default_lease_seconds,
                                   config.agent.max_lease_seconds)
        self.printers = PrinterQueues(self.registry, self.bus)
        self.executor = ThreadPoolExecutor(max_workers=8, thread_name_prefix="driver")
        interfaces = list(config.discovery.interfaces) or (["127.0.0.1"] if simulate else [])
        self.zeroconf = SharedZeroconf(interfaces)
        self.backends: dict[str, DeviceBackend] = {}
        self.backend_status: dict[str, BackendStatus] = {}
        self.metrics.watch_devices(lambda: self.registry.list(include_gone=True))

    def _state_dir_usable(self) -> bool:
        try:
            self.state_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            log.warning("state directory %s unusable (%s): known devices are not persisted",
                        self.state_dir, exc.strerror)
            return False
        return True

    def backend_names(self) -> list[str]:
        names = [d.name for d in self.backend_decisions if d.runs]
        if self.simulate:
            names = [*SIMULATED_BACKENDS, *(n for n in names if n not in SIMULATED_BACKENDS)]
        return names

    def _options(self, name: str) -> DriverOptions:
        options = self.config.backend_options(name)
        if isinstance(options, PcscOptions | SimIdCardOptions) and not options.csca_dir:
            options = replace(options, csca_dir=self.config.idcard.csca_dir)
        return options

    async def start(self) -> None:
        await asyncio.get_running_loop().run_in_executor(self.executor, self.trust.load)
        for decision in self.backend_decisions:
            log.info("backend %s %s: %s", decision.name, "on" if decision.runs else "off", decision.reason)
        for name in self.backend_names():
            try:
                cls = load_backend_class(name)
            except ConfigError:
                raise
            except Exception as exc:
                self._backend_failed(name, f"cannot load: {type(exc).__name__}: {exc}")
                continue
            options = self._options(name)
            ctx = CoreDriverContext(name, self.registry, self.bus, self.executor, self.zeroconf,
                                    self.state_dir, self.simulate, self.trust)
            try:
                backend = cls(ctx, options)
                await backend.start()
            except AgentError as exc:
                if isinstance(exc, ConfigError):
                    raise
                self._backend_failed(name, exc.message)
                continue
            except Exception as exc:
                self._backend_failed(name, f"{type(exc).__name__}: {exc}")
                continue
            self.backends[name] = backend
            self.backend_status[name] = BackendStatus(name, True)
            self.metrics.backend_up.labels(name).set(1)
            log.info("backend %s started", name)

    def _backend_failed(self, name: str, error: str) -> None:
        log.error("backend %s failed to start: %s", name, error)
        self.backend_status[name] = BackendStatus(name, False, error)
        self.metrics.backend_up.labels(name).set(0)

    def backend_problems(self) -> list[str]:
        """``"name: reason"`` for each backend that failed to start or whose system service is down."""
        problems = [f"{n}: {st.error}" for n, st in self.backend_status.items() if not st.running]
        for name, backend in self.backends.items():
            if problem := backend.service_problem():
                problems.append(f"{name}: {problem}")
        return sorted(problems)

    async def stop(self) -> None:
        await self.printers.close()
        for name, backend in reversed(list(self.backends.items())):
            try:
                await asyncio.wait_for(backend.stop(), timeout=10)
            except Exception as exc:
                log.warning("backend %s did not stop cleanly: %s", name, exc)
        self.backends.clear()
        await self.registry.close()
        await self.zeroconf.close()
        self.executor.shutdown(wait=False, cancel_futures=True)
