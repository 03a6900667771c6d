"""Every provisioning key is documented in the example configs, and the examples load."""

from __future__ import annotations

import re
from dataclasses import fields

from agent.config import DiscoverySection
from agent.config import load_config as load_agent_config
from gateway.config import SCHEMA, load_config
from tests.gateway.gateway_process import REPO


def _documented(text: str, key: str) -> bool:
    return re.search(rf"^#? ?{re.escape(key)} = ", text, re.MULTILINE) is not None


def test_gateway_identity_keys_are_documented() -> None:
    path = REPO / "config" / "gateway.example.toml"
    text = path.read_text()
    missing = [key for key in SCHEMA["identity"] if not _documented(text, key)]
    assert missing == []
    assert load_config(path).identity_enabled is False


def test_agent_discovery_keys_are_documented() -> None:
    path = REPO / "config" / "agent.example.toml"
    text = path.read_text()
    assert [f.name for f in fields(DiscoverySection) if not _documented(text, f.name)] == []
    assert load_agent_config(path).discovery.advertise is False
