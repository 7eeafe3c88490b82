"""What ``troika up`` reads from ``TROIKA_*`` variables."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from troika_shared.llm import LlmSettings


class UpSettings(LlmSettings):
    """The one-machine stack.

    Attributes:
        data_dir: Task workspaces, uploads, the SQLite database and the embedded servers' data.
        nats_url: Use this NATS server instead of starting an embedded one.
        redis_url: Use this Redis or Valkey instead of starting an embedded one.
        bus_prefix: The first token of every subject, stream and service name.
        gateway_host: The address the gateway API listens on.
        gateway_port: The gateway API's port.
        agent_replicas: Processes of each agent service (planner, executor, reviewer).
        web: Run the web app (``TROIKA_WEB=false`` leaves it out: the API alone).
        web_host: The address the web app listens on.
        web_port: The web app's port (its pages and the socket they talk through).
        web_public_url: The address people open when it is not the web app's own, e.g. behind
            a reverse proxy (also what the pages connect back to).
        ready_timeout_s: How long ``troika up`` waits for everything to report ready (long
            enough for the web app's first build, which fetches its packages from npm).
        llm_gguf: The GGUF model the local provider serves (default: SmolLM2-135M-Instruct).
    """

    data_dir: Path = Path("var")
    nats_url: str | None = None
    redis_url: str | None = None
    bus_prefix: str = "troika"
    gateway_host: str = "127.0.0.1"
    gateway_port: int = Field(default=8000, ge=1, le=65535)
    agent_replicas: int = Field(default=1, ge=1, le=16)
    web: bool = True
    web_host: str = "127.0.0.1"
    web_port: int = Field(default=3000, ge=1, le=65535)
    web_public_url: str | None = None
    ready_timeout_s: float = Field(default=180.0, gt=0)
    llm_gguf: Path | None = None

    @property
    def serves_local_llm(self) -> bool:
        """Whether ``troika up`` runs the embedded model: asked for, or nothing else is set."""
        if self.llm_provider == "auto":
            return self.llm_base_url is None and self.llm_api_key is None
        return self.llm_provider == "local"
