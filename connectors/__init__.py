"""Data-source adapters. Each kind implements :class:`connectors.base.Connector` and is
registered in :data:`connectors.base.REGISTRY`; the built-in kinds are just the first entries."""

from __future__ import annotations

from connectors.base import REGISTRY, Connector, Snapshot, check_schema, get_connector, register

__all__ = ["REGISTRY", "Connector", "Snapshot", "check_schema", "get_connector", "register"]
