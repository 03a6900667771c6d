"""Builds the uplink from the agent's ``[uplink]`` config section."""

from __future__ import annotations

from pathlib import Path

from agent.config import AgentConfig
from agent.core.runtime import AgentRuntime
from agent.uplink.service import Uplink, UplinkOptions
from agent.uplink.source import RegistryHealthSource


def machine_id() -> str:
    """``/etc/machine-id`` (stable per installation), else the host name."""
    try:
        value = Path("/etc/machine-id").read_text(encoding="ascii").strip()
    except OSError:
        value = ""
    if value:
        return value[:32]
    import socket

    return socket.gethostname()[:64]


def uplink_options(config: AgentConfig) -> UplinkOptions | None:
    section = config.uplink
    if not section.gateway:
        return None
    return UplinkOptions(
        gateway=section.gateway, token=section.token, agent_id=section.agent_id or machine_id(),
        province=section.province, centre=section.centre, ca_file=section.ca_file,
        heartbeat_seconds=section.heartbeat_seconds, diff_seconds=section.diff_seconds,
        snapshot_seconds=section.snapshot_seconds, first_delay_max_seconds=section.first_delay_max_seconds,
        outbox_max_bytes=section.outbox_max_bytes, outbox_max_age_seconds=section.outbox_max_age_seconds)


def build_uplink(runtime: AgentRuntime) -> Uplink | None:
    options = uplink_options(runtime.config)
    if options is None:
        return None
    return Uplink(options, RegistryHealthSource(runtime.registry, runtime.bus), runtime.state_dir,
                  version=runtime.version, config_hash=runtime.config.digest(), registry=runtime.metrics.registry)
