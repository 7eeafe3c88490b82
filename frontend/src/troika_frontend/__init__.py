"""Troika's web app (Reflex), talking to the gateway over HTTP and WebSocket only."""
