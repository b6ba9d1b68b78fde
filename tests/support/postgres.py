"""Placeholder: the real PostgreSQL server fixture lands with the connectors work."""
