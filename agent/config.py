"""Agent configuration: TOML, validated against a schema.

Any problem (missing file, unknown key, wrong type) is one line naming the file
and the key; the CLI prints it and exits with status 2.
"""

from __future__ import annotations

import hashlib
import json
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, is_dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from agent.domain.device import DeviceFamily
from agent.drivers.options import AUTO, OPTIONS, DriverOptions, DriverTable, Enabled, parse_driver_table
from agent.drivers.presence import PresenceProbe, probe
from agent.errors import ConfigError
from agent.schema import build_table

DEFAULT_SOCKET = "/run/centre-agent/agent.sock"
DEFAULT_STATE_DIR = "/var/lib/centre-agent"
LOG_TARGETS = ("stderr", "journald")


@dataclass(frozen=True)
class AgentSection:
    socket: str = DEFAULT_SOCKET  # unix socket for desktop clients and the CLI
    socket_mode: str = "0660"  # octal permission bits of the socket
    tcp: str = ""  # "127.0.0.1:PORT" to also listen on loopback TCP; "" = off
    state_dir: str = DEFAULT_STATE_DIR
    log_level: str = "info"
    log_format: str = "text"  # "text" or "json" (for log_target = "stderr")
    log_target: str = "stderr"  # "stderr", or "journald" for structured journal fields (DEVICE_ID, OUTCOME...)
    debounce_seconds: float = 2.0  # a device must be lost this long before it is reported gone
    default_lease_seconds: float = 60.0
    max_lease_seconds: float = 3600.0
    max_message_bytes: int = 64 * 1024 * 1024  # largest request (a print job)
    shutdown_grace_seconds: float = 5.0


@dataclass(frozen=True)
class MetricsSection:
    listen: str = "127.0.0.1:9464"  # Prometheus /metrics; "" = off; loopback only


@dataclass(frozen=True)
class DiscoverySection:
    interfaces: list[str] = field(default_factory=list)  # mDNS interfaces (addresses); [] = all
    advertise: bool = False  # announce this agent as _centre-agent._tcp for `centre-agent discover`


@dataclass(frozen=True)
class IdCardSection:
    csca_dir: str = ""  # directory of trusted CSCA certificates (PEM/DER) and master lists
    trust_refresh_seconds: float = 3600.0  # how often an enrolled agent fetches the gateway's trust bundle


@dataclass(frozen=True)
class DoctorSection:
    """``centre-agent doctor``: what a counter must have, how long to wait for the installer."""

    expect: list[str] = field(default_factory=list)  # families each counter must have; [] = those of the on backends
    wait_seconds: float = 60.0  # how long each prompt (insert the test card, place a finger...) waits
    max_trust_age_days: float = 7.0  # an enrolled agent's trust bundle older than this FAILs


@dataclass(frozen=True)
class WebSection:
    """The browser listener (Connect and gRPC-Web), loopback only, deny-by-default."""

    listen: str = "127.0.0.1:8765"  # "" = off; loopback only
    allowed_origins: list[str] = field(default_factory=list)  # portal origins, e.g. "https://portal.example.gov.vn"
    rate_per_second: float = 20.0  # sustained calls per second per client (token bucket refill)
    rate_burst: int = 40  # bucket size
    max_request_bytes: int = 64 * 1024 * 1024  # largest request body (a print job)
    max_streams_per_client: int = 4  # concurrent server streams per client (the event stream needs one)
    demo: bool = False  # serve the demo portal under /demo/ (always on with --simulate)
    demo_dir: str = ""  # directory of the built demo ("" = clients/js/demo of the source tree)


@dataclass(frozen=True)
class UplinkSection:
    """Health reporting to centre-gateway. Off while ``gateway`` is empty."""

    gateway: str = ""  # HOST:PORT of centre-gateway
    token: str = ""  # static fleet token (until the PC is enrolled with a client certificate)
    agent_id: str = ""  # defaults to the machine id
    province: str = ""  # province code, e.g. "HN"
    centre: str = ""  # centre code
    ca_file: str = ""  # PEM bundle to verify the gateway; "" = plaintext (loopback test setups only)
    heartbeat_seconds: float = 60.0
    diff_seconds: float = 10.0
    snapshot_seconds: float = 4 * 3600.0
    first_delay_max_seconds: float = 90.0  # random first delay: a fleet restarting at once spreads out
    outbox_max_bytes: int = 8 * 1024 * 1024
    outbox_max_age_seconds: float = 7 * 24 * 3600.0

    def __repr__(self) -> str:
        return f"UplinkSection(gateway={self.gateway!r}, centre={self.centre!r}, token=<redacted>)"


@dataclass(frozen=True)
class AgentConfig:
    agent: AgentSection = field(default_factory=AgentSection)
    metrics: MetricsSection = field(default_factory=MetricsSection)
    discovery: DiscoverySection = field(default_factory=DiscoverySection)
    idcard: IdCardSection = field(default_factory=IdCardSection)
    web: WebSection = field(default_factory=WebSection)
    uplink: UplinkSection = field(default_factory=UplinkSection)
    doctor: DoctorSection = field(default_factory=DoctorSection)
    # one checked table per backend: [drivers.<backend>] with ``enabled`` and the backend's options
    drivers: dict[str, DriverTable] = field(default_factory=dict)
    source: str = ""  # file the config came from ("" = defaults)

    def backend_decisions(self, presence: PresenceProbe = probe, simulate: bool = False) -> list[BackendDecision]:
        """For each ``[drivers.*]`` table, in file order: does the backend run, and why.

        With ``simulate`` (``--simulate``: emulated devices) an ``auto`` backend stays off;
        only backends set to ``true`` run beside the simulated ones.
        """
        decisions = []
        for name, table in self.drivers.items():
            if table.enabled == AUTO and simulate:
                decisions.append(BackendDecision(name, table.enabled, False, 'enabled = "auto", off with --simulate'))
            elif table.enabled == AUTO:
                found = presence(name)
                state = "present" if found.present else "not present"
                decisions.append(BackendDecision(name, table.enabled, found.present,
                                                 f"enabled = \"auto\", {state}: {found.detail}"))
            else:
                decisions.append(BackendDecision(name, table.enabled, bool(table.enabled),
                                                 f"enabled = {str(table.enabled).lower()}"))
        return decisions

    def enabled_backends(self, presence: PresenceProbe = probe, simulate: bool = False) -> list[str]:
        """The backends that will run: ``auto`` resolved with ``presence``."""
        return [d.name for d in self.backend_decisions(presence, simulate) if d.runs]

    def backend_options(self, name: str) -> DriverOptions:
        """The checked options of ``name`` (its defaults when the config has no table for it)."""
        table = self.drivers.get(name)
        return table.options if table is not None else OPTIONS[name]()

    def digest(self) -> str:
        blob = json.dumps(_plain(self), sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()


@dataclass(frozen=True)
class BackendDecision:
    """Whether a configured backend runs on this machine, and why (for the log and the doctor)."""

    name: str
    enabled: Enabled  # as configured: True, False or "auto"
    runs: bool
    reason: str  # e.g. 'enabled = "auto", not present: cupsd not found (...)'

    @property
    def auto_absent(self) -> bool:
        """``auto`` and the backend's service or library is not on this machine."""
        return self.enabled == AUTO and not self.runs


_SECRET_FIELDS = frozenset({"source", "token"})


def _plain(obj: Any) -> Any:
    if is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: _plain(getattr(obj, f.name)) for f in fields(obj) if f.name not in _SECRET_FIELDS}
    if isinstance(obj, Mapping):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_plain(v) for v in obj]
    return obj


def load_config(path: str | os.PathLike[str] | None) -> AgentConfig:
    """Load and validate a config file; ``None`` gives the defaults."""
    if path is None:
        return AgentConfig()
    file = str(path)
    try:
        raw = Path(file).read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{file}: config file not found") from None
    except OSError as exc:
        raise ConfigError(f"{file}: cannot read config file: {exc.strerror}") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{file}: not valid TOML: {exc}") from None
    drivers = data.pop("drivers", {})
    if not isinstance(drivers, Mapping):
        raise ConfigError(f"{file}: [drivers] must be a table of [drivers.<backend>] tables")
    config: AgentConfig = build_table(AgentConfig, data, "", file, skip=frozenset({"source", "drivers"}))
    tables = {str(name): parse_driver_table(str(name), table, file) for name, table in drivers.items()}
    config = replace(config, drivers=tables, source=file)
    validate_semantics(config)
    return config


def validate_semantics(config: AgentConfig) -> None:
    file = config.source or "<defaults>"
    try:
        int(config.agent.socket_mode, 8)
    except ValueError:
        raise ConfigError(f"{file}: agent.socket_mode must be octal like \"0660\"") from None
    if config.agent.log_level.lower() not in ("debug", "info", "warning", "error"):
        raise ConfigError(f"{file}: agent.log_level must be debug, info, warning or error")
    if config.agent.log_format not in ("text", "json"):
        raise ConfigError(f"{file}: agent.log_format must be \"text\" or \"json\"")
    if config.agent.log_target not in LOG_TARGETS:
        raise ConfigError(f"{file}: agent.log_target must be \"stderr\" or \"journald\"")
    for key, value in (("agent.tcp", config.agent.tcp), ("metrics.listen", config.metrics.listen),
                       ("web.listen", config.web.listen)):
        if value:
            check_loopback_address(value, f"{file}: {key}")
    for origin in config.web.allowed_origins:
        if normalize_origin(origin) != origin:
            raise ConfigError(f"{file}: web.allowed_origins entry {origin!r} must be scheme://host[:port], "
                              f"e.g. {normalize_origin(origin)!r}")
    if config.web.rate_per_second <= 0 or config.web.rate_burst < 1:
        raise ConfigError(f"{file}: web.rate_per_second and web.rate_burst must be positive")
    _validate_doctor(config.doctor, file)
    if config.idcard.trust_refresh_seconds <= 0:
        raise ConfigError(f"{file}: idcard.trust_refresh_seconds must be positive")


def _validate_doctor(doctor: DoctorSection, file: str) -> None:
    families = [f.value for f in DeviceFamily]
    for family in doctor.expect:
        if family not in families:
            raise ConfigError(f"{file}: doctor.expect entry {family!r} is not a device family "
                              f"({', '.join(families)})")
    if doctor.wait_seconds <= 0:
        raise ConfigError(f"{file}: doctor.wait_seconds must be positive")
    if doctor.max_trust_age_days <= 0:
        raise ConfigError(f"{file}: doctor.max_trust_age_days must be positive")


def normalize_origin(value: str) -> str:
    """``scheme://host[:port]`` in lower case, default ports dropped; "" when ``value`` is not an origin."""
    try:
        parts = urlsplit(value.strip())
        port = parts.port
    except ValueError:
        return ""
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.path not in ("", "/") \
            or parts.query or parts.fragment or parts.username or parts.password:
        return ""
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    default = 443 if parts.scheme == "https" else 80
    return f"{parts.scheme}://{host}" + (f":{port}" if port is not None and port != default else "")


def check_loopback_address(value: str, what: str) -> tuple[str, int]:
    """Parse ``host:port`` and insist on a loopback host: the agent never listens elsewhere."""
    host, sep, port_text = value.rpartition(":")
    host = host.strip("[]")
    if not sep or not port_text.isdigit() or not 0 <= int(port_text) < 65536:
        raise ConfigError(f"{what} must be HOST:PORT, got {value!r}")
    if host not in ("127.0.0.1", "::1", "localhost") and not host.startswith("127."):
        raise ConfigError(f"{what} must be a loopback address (127.0.0.1, ::1), got {host!r}")
    return host, int(port_text)
