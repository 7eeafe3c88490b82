"""Troika's gateway: the only public API. It owns auth, the database, scheduling and approvals."""

from troika_gateway.app import create_app

__all__ = ["create_app"]
