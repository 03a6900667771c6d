"""The agent on the LAN: ``_centre-agent._tcp`` advertisement and the installer's browse.

The advertisement says who is there (host, version, enrolled or not, centre code) so an
installer can walk a centre and see which PCs still need enrolling. It carries no
secret and is never trusted: identity comes only from the gateway-issued certificate.
"""

from __future__ import annotations

import asyncio
import socket
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from zeroconf.asyncio import AsyncZeroconf

SERVICE_TYPE = "_centre-agent._tcp.local."
TXT_VERSION = "1"


@dataclass(frozen=True, slots=True)
class AgentAdvert:
    host: str
    version: str
    enrolled: bool
    centre: str
    agent_id: str
    addresses: tuple[str, ...] = ()

    def properties(self) -> dict[str, str]:
        return {"txtvers": TXT_VERSION, "host": self.host, "version": self.version,
                "enrolled": "yes" if self.enrolled else "no", "centre": self.centre, "agent": self.agent_id}

    def as_json(self) -> dict[str, object]:
        data = asdict(self)
        data["addresses"] = list(self.addresses)
        return data


def _label(host: str) -> str:
    return "".join(ch if ch.isalnum() or ch == "-" else "-" for ch in host)[:60] or "centre-agent"


def _instance_name(host: str) -> str:
    return f"{_label(host)}.{SERVICE_TYPE}"


class Advertiser:
    """Registers the advert on the agent's shared zeroconf instance; ``close`` withdraws it."""

    def __init__(self, advert: AgentAdvert, port: int = 0) -> None:
        self.advert = advert
        self.port = port
        self._zc: AsyncZeroconf | None = None
        self._info: object | None = None

    async def start(self, zc: AsyncZeroconf) -> None:
        from zeroconf import ServiceInfo

        info = ServiceInfo(SERVICE_TYPE, _instance_name(self.advert.host), port=self.port,
                           properties=self.advert.properties(), server=f"{_label(self.advert.host)}.local.",
                           parsed_addresses=list(self.advert.addresses) or None)
        await zc.async_register_service(info, allow_name_change=True)
        self._zc, self._info = zc, info

    async def close(self) -> None:
        zc, info, self._zc, self._info = self._zc, self._info, None, None
        if zc is not None and info is not None:
            from zeroconf import ServiceInfo

            assert isinstance(info, ServiceInfo)
            await zc.async_unregister_service(info)


def local_addresses(interfaces: list[str]) -> tuple[str, ...]:
    """The IPv4 addresses to advertise: the configured ones, else every non-loopback one."""
    if interfaces:
        return tuple(i for i in interfaces if ":" not in i)
    import ifaddr

    found = []
    for adapter in ifaddr.get_adapters():
        for ip in adapter.ips:
            if isinstance(ip.ip, str) and not ip.ip.startswith("127."):
                found.append(ip.ip)
    return tuple(found)


async def browse(timeout: float, interfaces: list[str] | None = None) -> list[AgentAdvert]:
    """Every agent that answers on the segment within ``timeout`` seconds."""
    from zeroconf import InterfaceChoice, IPVersion, ServiceStateChange
    from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo, AsyncZeroconf

    if interfaces:
        zc = AsyncZeroconf(interfaces=interfaces, ip_version=IPVersion.V4Only)
    else:
        zc = AsyncZeroconf(interfaces=InterfaceChoice.All, ip_version=IPVersion.V4Only)
    names: set[str] = set()

    def changed(zeroconf: object, service_type: str, name: str, state_change: ServiceStateChange) -> None:
        if state_change is not ServiceStateChange.Removed:
            names.add(name)

    browser = AsyncServiceBrowser(zc.zeroconf, [SERVICE_TYPE], handlers=[changed])
    try:
        await asyncio.sleep(timeout)
        adverts = []
        for name in sorted(names):
            info = AsyncServiceInfo(SERVICE_TYPE, name)
            if not await info.async_request(zc.zeroconf, 3000):
                continue
            props = {k.decode(errors="replace"): (v or b"").decode(errors="replace")
                     for k, v in info.properties.items()}
            adverts.append(AgentAdvert(host=props.get("host", ""), version=props.get("version", ""),
                                       enrolled=props.get("enrolled") == "yes", centre=props.get("centre", ""),
                                       agent_id=props.get("agent", ""),
                                       addresses=tuple(info.parsed_addresses())))
        return adverts
    finally:
        await browser.async_cancel()
        await zc.async_close()


def default_advert(version: str, enrolled: bool, centre: str, agent_id: str, interfaces: list[str]) -> AgentAdvert:
    return AgentAdvert(socket.gethostname(), version, enrolled, centre, agent_id, local_addresses(interfaces))
