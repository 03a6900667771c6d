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
from typing import Any, get_args, get_origin, get_type_hints
from urllib.parse import urlsplit

from agent.domain.device import DeviceFamily
from agent.errors import ConfigError

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


@dataclass(frozen=True)
class DoctorSection:
    """``centre-agent doctor``: what a counter must have, how long to wait for the installer."""

    expect: list[str] = field(default_factory=list)  # families each counter must have; [] = those of the on backends
    wait_seconds: float = 60.0  # how long each prompt (insert the test card, place a finger...) waits


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
    # one table per backend: [drivers.<backend>] with ``enabled`` and backend options
    drivers: dict[str, dict[str, Any]] = field(default_factory=dict)
    source: str = ""  # file the config came from ("" = defaults)

    def enabled_backends(self) -> list[str]:
        return [name for name, opts in self.drivers.items() if opts.get("enabled", True)]

    def backend_options(self, name: str) -> dict[str, Any]:
        return {k: v for k, v in self.drivers.get(name, {}).items() if k != "enabled"}

    def digest(self) -> str:
        blob = json.dumps(_plain(self), sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()


_SECRET_FIELDS = frozenset({"source", "token"})


def _plain(obj: Any) -> Any:
    if is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: _plain(getattr(obj, f.name)) for f in fields(obj) if f.name not in _SECRET_FIELDS}
    return obj


def _check(value: Any, hint: Any, where: str, file: str) -> Any:
    origin = get_origin(hint)
    if is_dataclass(hint) and isinstance(hint, type):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{file}: [{where}] must be a table")
        return _build(hint, value, where, file)
    if origin is list:
        (item,) = get_args(hint)
        if not isinstance(value, list):
            raise ConfigError(f"{file}: {where} must be a list")
        return [_check(v, item, f"{where}[{i}]", file) for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{file}: [{where}] must be a table")
        return {str(k): (dict(v) if isinstance(v, Mapping) else _bad(f"{where}.{k}", "a table", file))
                for k, v in value.items()}
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{file}: {where} must be a number, not {type(value).__name__}")
        return float(value)
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{file}: {where} must be an integer, not {type(value).__name__}")
        return value
    if hint is bool or hint is str:
        if not isinstance(value, hint):
            raise ConfigError(f"{file}: {where} must be a {hint.__name__}, not {type(value).__name__}")
        return value
    return value


def _bad(where: str, what: str, file: str) -> Any:
    raise ConfigError(f"{file}: [{where}] must be {what}")


def _build(cls: type[Any], data: Mapping[str, Any], where: str, file: str) -> Any:
    hints = get_type_hints(cls)
    known = {f.name for f in fields(cls) if f.name != "source"}
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{where}.{key}" if where else key
        if key not in known:
            raise ConfigError(f"{file}: unknown key {name!r}")
        kwargs[key] = _check(value, hints[key], name, file)
    return cls(**kwargs)


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
    config: AgentConfig = _build(AgentConfig, data, "", file)
    config = replace(config, source=file)
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


def _validate_doctor(doctor: DoctorSection, file: str) -> None:
    families = [f.value for f in DeviceFamily]
    for family in doctor.expect:
        if family not in families:
            raise ConfigError(f"{file}: doctor.expect entry {family!r} is not a device family "
                              f"({', '.join(families)})")
    if doctor.wait_seconds <= 0:
        raise ConfigError(f"{file}: doctor.wait_seconds must be positive")


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
