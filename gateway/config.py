"""Gateway configuration: a TOML file checked against a schema.

Unknown keys, wrong types and missing files are errors that name the file and the
key, so an operator's typo never silently falls back to a default.
"""

from __future__ import annotations

import ipaddress
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.errors import ConfigError

#: section -> key -> accepted Python type(s)
SCHEMA: dict[str, dict[str, tuple[type, ...]]] = {
    "server": {"grpc_listen": (str,), "http_listen": (str,), "max_message_bytes": (int,), "workers": (int,)},
    "storage": {"backend": (str,), "path": (str,), "dsn": (str,), "pool_size": (int,)},
    "auth": {"agent_tokens": (list,), "admin_tokens": (list,)},
    "admission": {"rate": (int, float), "burst": (int, float), "enabled": (bool,)},
    "fleet": {"heartbeat_flush_seconds": (int, float), "view_cache_seconds": (int, float),
              "write_batch": (int,), "transition_retention_days": (int, float)},
    "logging": {"level": (str,)},
}


@dataclass(frozen=True, slots=True)
class GatewayConfig:
    grpc_listen: str = "127.0.0.1:50070"
    http_listen: str = "127.0.0.1:8070"
    max_message_bytes: int = 4 * 1024 * 1024
    workers: int = 1  # processes sharing the gRPC port; one per core
    storage_backend: str = "sqlite"
    storage_path: str = "/var/lib/centre-gateway/fleet.db"
    storage_dsn: str = ""
    pool_size: int = 4
    agent_tokens: tuple[str, ...] = ()
    admin_tokens: tuple[str, ...] = ()
    admission_enabled: bool = True
    admission_rate: float = 2000.0
    admission_burst: float = 4000.0
    heartbeat_flush_seconds: float = 30.0
    view_cache_seconds: float = 2.0
    write_batch: int = 256
    transition_retention_days: float = 90.0
    log_level: str = "INFO"
    source: str = field(default="<defaults>", compare=False)


_FIELDS = {
    ("server", "grpc_listen"): "grpc_listen", ("server", "http_listen"): "http_listen",
    ("server", "max_message_bytes"): "max_message_bytes", ("server", "workers"): "workers",
    ("storage", "backend"): "storage_backend", ("storage", "path"): "storage_path",
    ("storage", "dsn"): "storage_dsn", ("storage", "pool_size"): "pool_size",
    ("auth", "agent_tokens"): "agent_tokens", ("auth", "admin_tokens"): "admin_tokens",
    ("admission", "enabled"): "admission_enabled", ("admission", "rate"): "admission_rate",
    ("admission", "burst"): "admission_burst",
    ("fleet", "heartbeat_flush_seconds"): "heartbeat_flush_seconds",
    ("fleet", "view_cache_seconds"): "view_cache_seconds", ("fleet", "write_batch"): "write_batch",
    ("fleet", "transition_retention_days"): "transition_retention_days",
    ("logging", "level"): "log_level",
}


def split_hostport(value: str, where: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not host or not 0 <= int(port) <= 65535:
        raise ConfigError(f"{where}: expected HOST:PORT")
    return host.strip("[]"), int(port)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def load_config(path: Path | None) -> GatewayConfig:
    """Read and check a config file; ``None`` gives the defaults."""
    if path is None:
        return GatewayConfig()
    where = str(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{where}: file not found") from None
    except OSError as exc:
        raise ConfigError(f"{where}: cannot read ({exc.strerror})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{where}: not valid TOML ({exc})") from None
    values: dict[str, Any] = {"source": where}
    for section, table in data.items():
        if section not in SCHEMA:
            raise ConfigError(f"{where}: unknown section [{section}]")
        if not isinstance(table, dict):
            raise ConfigError(f"{where}: [{section}] must be a table")
        for key, value in table.items():
            types = SCHEMA[section].get(key)
            if types is None:
                raise ConfigError(f"{where}: unknown key {section}.{key}")
            if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
                names = " or ".join(t.__name__ for t in types)
                raise ConfigError(f"{where}: {section}.{key} must be {names}")
            if isinstance(value, list):
                if not all(isinstance(v, str) and v for v in value):
                    raise ConfigError(f"{where}: {section}.{key} must be a list of non-empty strings")
                value = tuple(value)
            values[_FIELDS[(section, key)]] = value
    config = GatewayConfig(**values)
    _check(config, where)
    return config


def _check(config: GatewayConfig, where: str) -> None:
    split_hostport(config.grpc_listen, f"{where}: server.grpc_listen")
    host, _ = split_hostport(config.http_listen, f"{where}: server.http_listen")
    if not _is_loopback(host):
        raise ConfigError(f"{where}: server.http_listen must be a loopback address (dashboard has no login)")
    if not 1 <= config.workers <= 64:
        raise ConfigError(f"{where}: server.workers must be 1-64")
    if config.storage_backend not in ("sqlite", "postgresql"):
        raise ConfigError(f"{where}: storage.backend must be sqlite or postgresql")
    if config.storage_backend == "postgresql" and not config.storage_dsn:
        raise ConfigError(f"{where}: storage.dsn is required for postgresql")
    if config.admission_rate <= 0 or config.admission_burst < 1:
        raise ConfigError(f"{where}: admission.rate must be > 0 and admission.burst >= 1")
    if config.heartbeat_flush_seconds <= 0 or config.view_cache_seconds < 0 or config.write_batch < 1 \
            or config.transition_retention_days <= 0:
        raise ConfigError(f"{where}: fleet intervals must be positive")
    if config.log_level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise ConfigError(f"{where}: logging.level must be DEBUG, INFO, WARNING or ERROR")
