"""Two network namespaces joined by a veth pair: a private LAN segment for discovery tests.

Addresses live inside the namespaces only (10.123.0.1/24 and 10.123.0.2/24); the host's
interfaces are never touched. Everything is removed on ``close``.
"""

from __future__ import annotations

import os
import subprocess


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)


class VethSegment:
    def __init__(self) -> None:
        tag = f"{os.getpid() % 100000}"
        self.a, self.b = f"cdp-a-{tag}", f"cdp-b-{tag}"
        self.addr_a, self.addr_b = "10.123.0.1", "10.123.0.2"
        self._created: list[str] = []

    def open(self) -> None:
        try:
            for ns in (self.a, self.b):
                _ip("netns", "add", ns)
                self._created.append(ns)
            veth_a, veth_b = f"va{self.a[-6:]}", f"vb{self.b[-6:]}"
            # the pair is born inside namespace a, and one end moves to b: nothing on the host
            _ip("-n", self.a, "link", "add", veth_a, "type", "veth", "peer", "name", veth_b, "netns", self.b)
            for ns, dev, addr in ((self.a, veth_a, self.addr_a), (self.b, veth_b, self.addr_b)):
                _ip("-n", ns, "addr", "add", f"{addr}/24", "dev", dev)
                _ip("-n", ns, "link", "set", dev, "up", "multicast", "on")
                _ip("-n", ns, "link", "set", "lo", "up")
        except BaseException:
            self.close()
            raise

    def exec_prefix(self, ns: str) -> list[str]:
        return ["ip", "netns", "exec", ns]

    def close(self) -> None:
        for ns in reversed(self._created):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30)
        self._created.clear()
