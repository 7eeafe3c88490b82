"""What the web app reads from ``TROIKA_*`` variables."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from troika_shared.settings import TroikaSettings

__all__ = ["WebSettings"]


class WebSettings(TroikaSettings):
    """The web app.

    Attributes:
        gateway_url: The gateway API the app talks to (its only way into the system).
        web_host: The address the web app listens on.
        web_port: The web app's port (pages, and the socket the pages talk through).
        web_public_url: The address people open, when it is not ``http://host:port``
            (behind a reverse proxy); the pages connect back to it.
        web_idle_s: How long a closed browser tab's live view is kept before it is dropped.
        web_build_dir: Where the pages are built (default: ``.web`` beside ``rxconfig.py``);
            each running web app needs its own, since the build holds its address.
    """

    gateway_url: str = "http://127.0.0.1:8000"
    web_host: str = "127.0.0.1"
    web_port: int = Field(default=3000, ge=1, le=65535)
    web_public_url: str | None = None
    web_idle_s: float = Field(default=60.0, gt=0)
    web_build_dir: Path | None = None

    @property
    def url(self) -> str:
        """Where people open the app."""
        if self.web_public_url:
            return self.web_public_url.rstrip("/")
        host = "127.0.0.1" if self.web_host in ("0.0.0.0", "::") else self.web_host  # noqa: S104
        return f"http://{host}:{self.web_port}"
