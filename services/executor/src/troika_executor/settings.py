"""The executor's settings."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr

from troika_executor.net import OutboundPolicy
from troika_shared.approvals import approval_key
from troika_shared.llm import LlmSettings
from troika_shared.settings import AgentSettings


class ExecutorSettings(AgentSettings, LlmSettings):
    """Everything the executor reads from ``TROIKA_*`` variables.

    Attributes:
        data_dir: The data directory it shares with the gateway (task folders live under it).
        secret_key: The deployment's secret key (the gateway's ``TROIKA_SECRET_KEY``): approved
            calls are sealed with a key derived from it. Without it every call is refused.
        outbound_allow_hosts: Hosts the web tools may reach although they are not public
            (names, addresses or ``host:port``), e.g. an intranet API. Empty: public only.
    """

    data_dir: Path = Path("var")
    secret_key: SecretStr | None = None
    outbound_allow_hosts: list[str] = Field(default_factory=list)

    def outbound(self) -> OutboundPolicy:
        """The rule for the web tools' destinations."""
        return OutboundPolicy.of(self.outbound_allow_hosts)

    def seal_key(self) -> bytes | None:
        """The key that checks the gateway's seals on approved calls."""
        return approval_key(self.secret_key.get_secret_value()) if self.secret_key else None
