"""Builds the uplink from the agent's ``[uplink]`` config section."""

from __future__ import annotations

from pathlib import Path

from agent.config import AgentConfig
from agent.core.runtime import AgentRuntime
from agent.provisioning.credentials import ClientCertificateCredentials
from agent.provisioning.enroll import CertificateRenewer
from agent.provisioning.identity import IdentityInfo, IdentityStore
from agent.uplink.service import Uplink, UplinkOptions
from agent.uplink.source import RegistryHealthSource
from agent.uplink.trust_fetch import TrustFetcher


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


def uplink_options(config: AgentConfig, identity: IdentityInfo | None = None) -> UplinkOptions | None:
    """With an enrolled identity, the gateway endpoint and the agent's names come from it
    (the config's ``uplink.gateway`` still overrides the endpoint)."""
    section = config.uplink
    gateway = section.gateway or (identity.report_endpoint if identity else "")
    if not gateway:
        return None
    if identity is not None:
        agent_id, province, centre = identity.agent_id, identity.province, identity.centre
    else:
        agent_id, province, centre = section.agent_id or machine_id(), section.province, section.centre
    return UplinkOptions(
        gateway=gateway, token=section.token, agent_id=agent_id,
        province=province, centre=centre, ca_file=section.ca_file,
        heartbeat_seconds=section.heartbeat_seconds, diff_seconds=section.diff_seconds,
        snapshot_seconds=section.snapshot_seconds, first_delay_max_seconds=section.first_delay_max_seconds,
        outbox_max_bytes=section.outbox_max_bytes, outbox_max_age_seconds=section.outbox_max_age_seconds)


def build_uplink(runtime: AgentRuntime) -> Uplink | None:
    """Static-token uplink from ``[uplink]``, or mTLS once the PC is enrolled (plus renewal)."""
    store = IdentityStore(runtime.state_dir)
    identity = store.info() if store.present else None
    options = uplink_options(runtime.config, identity)
    if options is None:
        return None
    credentials = ClientCertificateCredentials(store) if identity is not None else None
    renewer = CertificateRenewer(store) if identity is not None else None
    trust = (TrustFetcher(credentials, options.gateway, runtime.trust, runtime.config.idcard.trust_refresh_seconds)
             if credentials is not None else None)
    return Uplink(options, RegistryHealthSource(runtime.registry, runtime.bus), runtime.state_dir,
                  version=runtime.version, config_hash=runtime.config.digest(), registry=runtime.metrics.registry,
                  credentials=credentials, renewer=renewer, trust=trust,
                  trust_health=runtime.trust.health if trust is not None else None)
