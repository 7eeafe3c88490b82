"""A real SMTP server on loopback (aiosmtpd) that keeps every message it receives."""

from __future__ import annotations

import email
import email.policy
import socket
import threading
import warnings
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import TYPE_CHECKING, Any, Self, cast

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

if TYPE_CHECKING:
    from aiosmtpd.smtp import SMTP, Envelope, Session

__all__ = ["MailServer", "Received"]


@dataclass(frozen=True, slots=True)
class Received:
    """One message as the server took it: the envelope and the parsed message."""

    sender: str
    recipients: list[str]
    message: EmailMessage
    login: str | None


@dataclass
class MailServer:
    """An SMTP server on ``127.0.0.1`` with optional LOGIN/PLAIN authentication.

    Attributes:
        username: With a password: the account clients must sign in with.
        refuse: Recipients the server refuses (``550``).
    """

    username: str = ""
    password: str = ""
    refuse: set[str] = field(default_factory=set)
    received: list[Received] = field(default_factory=list)
    connections: int = 0
    port: int = 0
    _controller: Controller | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def settings(self, **changes: Any) -> dict[str, Any]:  # noqa: ANN401 - JSON values
        """The SMTP settings a person would save to send through this server."""
        return {
            "host": "127.0.0.1",
            "port": self.port,
            "security": "none",
            "username": self.username,
            "password": self.password,
            "from_address": "alice@example.com",
            "from_name": "Alice Example",
        } | changes

    async def handle_RCPT(  # noqa: N802 - aiosmtpd's hook name
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        """Takes or refuses one recipient."""
        del server, session, options
        if address in self.refuse:
            return "550 5.1.1 no such mailbox here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(  # noqa: N802 - aiosmtpd's hook name
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        """Keeps the message."""
        del server
        content = envelope.original_content or b""
        parsed = email.message_from_bytes(content, policy=email.policy.default)
        data = session.auth_data
        login = data.login.decode() if isinstance(data, LoginPassword) else None
        with self._lock:
            self.received.append(
                Received(
                    sender=str(envelope.mail_from),
                    recipients=list(envelope.rcpt_tos),
                    message=parsed,
                    login=login,
                )
            )
        return "250 Message accepted for delivery"

    def _authenticate(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        mechanism: str,
        data: Any,  # noqa: ANN401
    ) -> AuthResult:
        del server, session, envelope, mechanism
        if not isinstance(data, LoginPassword):
            return AuthResult(success=False, handled=False)
        if data.login.decode() == self.username and data.password.decode() == self.password:
            return AuthResult(success=True, auth_data=data)
        return AuthResult(success=False, handled=False)  # the server answers 535

    def __enter__(self) -> Self:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        server = self

        class Counting(Controller):
            def factory(self) -> SMTP:
                server.connections += 1
                with warnings.catch_warnings():
                    # Sign-in without TLS: fine on loopback, which is all this server serves.
                    warnings.simplefilter("ignore", UserWarning)
                    return cast("SMTP", super().factory())  # type: ignore[no-untyped-call]

        auth = bool(self.password)
        self._controller = Counting(
            self,
            hostname="127.0.0.1",
            port=self.port,
            authenticator=self._authenticate if auth else None,
            auth_require_tls=False,
            auth_required=auth,
        )
        self._controller.start()
        self.connections = 0  # start() checks the server with a connection of its own
        return self

    def __exit__(self, *_: object) -> None:
        if self._controller is not None:
            self._controller.stop()
