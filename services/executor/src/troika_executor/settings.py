"""The executor's settings."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr

from troika_executor.browser import Browsers
from troika_executor.net import OutboundPolicy
from troika_executor.sandbox import Sandbox, SandboxLimits
from troika_executor.tools import Toolbox
from troika_shared.approvals import approval_key
from troika_shared.files import FilesSettings
from troika_shared.llm import LlmSettings
from troika_shared.settings import AgentSettings
from troika_shared.vault import call_secrets_key


class ExecutorSettings(AgentSettings, LlmSettings, FilesSettings):
    """Everything the executor reads from ``TROIKA_*`` variables.

    Attributes:
        data_dir: The data directory it shares with the gateway (task folders live under it).
        secret_key: The deployment's secret key (the gateway's ``TROIKA_SECRET_KEY``): approved
            calls are sealed with a key derived from it. Without it (or the two keys below)
            every call is refused.
        approval_key, call_secrets_key: The two keys derived from it, in hex, instead of the
            secret itself (``troika up`` passes only these: the executor, which handles
            untrusted pages, files and code, never holds the key that signs sessions).
        outbound_allow_hosts: Hosts the web tools may reach although they are not public
            (names, addresses or ``host:port``), e.g. an intranet API. Empty: public only.
        sandbox: How ``run_python`` is isolated: ``auto`` (namespaces where the machine
            allows them; else the weaker ``basic`` if the executor runs as root, a uid per
            run, and otherwise the tool is refused with the reason), ``namespaces`` (refuse to
            run without them), ``basic`` (an audit hook only: a fallback, not a security
            boundary; logged as a warning), or ``off`` (the tool is refused).
        sandbox_memory_mb, sandbox_file_mb, sandbox_processes: Each run's limits.
        sandbox_disk_mb: What one run may write to disk in all (beyond the task's files it
            starts with); past it the run is stopped.
        sandbox_uid_base: When the executor runs as root, each concurrent run gets its own
            uid from here on (``sandbox_slots`` of them).
        browser: Whether the browser tools run here (``false``: they are refused).
        browser_executable: The system's Chromium (never a downloaded one).
        browser_contexts: Tasks' pages open at once in this replica; more wait for a slot.
        browser_idle_s: A page unused this long is closed (its cookies and address are kept
            and it reopens on the next call); a task's page closes for good when it stops.
    """

    data_dir: Path = Path("var")
    secret_key: SecretStr | None = None
    approval_key: SecretStr | None = None
    call_secrets_key: SecretStr | None = None
    outbound_allow_hosts: list[str] = Field(default_factory=list)
    sandbox: Literal["auto", "namespaces", "basic", "off"] = "auto"
    sandbox_memory_mb: int = Field(default=1024, ge=64, le=65_536)
    sandbox_file_mb: int = Field(default=64, ge=1, le=65_536)
    sandbox_processes: int = Field(default=32, ge=1, le=4096)
    sandbox_disk_mb: int = Field(default=256, ge=1, le=1_048_576)
    sandbox_uid_base: int = Field(default=61_000, ge=1000)
    sandbox_slots: int = Field(default=16, ge=1, le=1024)
    browser: bool = True
    browser_executable: str = "/usr/bin/chromium"
    browser_contexts: int = Field(default=4, ge=1, le=64)
    browser_idle_s: float = Field(default=600.0, ge=5, le=86_400)

    def toolbox(self, *, images: bool = False) -> Toolbox:
        """What the tools share: the data directory, the outbound rule, the sandbox and the
        browsers (``images``: the model reads screenshots)."""
        data_dir = self.data_dir.resolve()
        sandbox = (
            None
            if self.sandbox == "off"
            else Sandbox(
                data_dir, uid_base=self.sandbox_uid_base, slots=self.sandbox_slots,
                mode=self.sandbox,
            )
        )  # fmt: skip
        limits = SandboxLimits(
            memory_mb=self.sandbox_memory_mb,
            file_mb=self.sandbox_file_mb,
            processes=self.sandbox_processes,
            disk_mb=self.sandbox_disk_mb,
        )
        browsers = (
            Browsers(
                data_dir, self.outbound(), executable=self.browser_executable,
                max_contexts=self.browser_contexts, idle_s=self.browser_idle_s,
                state_key=self.secrets_key(),
            )
            if self.browser
            else None
        )  # fmt: skip
        return Toolbox(
            data_dir, self.outbound(), sandbox=sandbox, sandbox_limits=limits,
            browsers=browsers, images=images,
        )  # fmt: skip

    def outbound(self) -> OutboundPolicy:
        """The rule for the web tools' destinations."""
        return OutboundPolicy.of(self.outbound_allow_hosts)

    def seal_key(self) -> bytes | None:
        """The key that checks the gateway's seals on approved calls (``approval_key``, hex, or
        derived from ``secret_key``)."""
        if self.approval_key is not None:
            return bytes.fromhex(self.approval_key.get_secret_value())
        return approval_key(self.secret_key.get_secret_value()) if self.secret_key else None

    def secrets_key(self) -> bytes | None:
        """The key that opens the person's credentials sent with an approved call
        (``call_secrets_key``, hex, or derived from ``secret_key``)."""
        if self.call_secrets_key is not None:
            return bytes.fromhex(self.call_secrets_key.get_secret_value())
        return call_secrets_key(self.secret_key.get_secret_value()) if self.secret_key else None
