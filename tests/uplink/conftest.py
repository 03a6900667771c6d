from __future__ import annotations

from tests.gateway.conftest import gateway, gateway_factory, postgres, store_spec

__all__ = ["gateway", "gateway_factory", "postgres", "store_spec"]
