"""The errors every Troika service shares.

The branch an exception belongs to decides what happens to the bus message being handled::

    TroikaError
    ├── RetryableError            nak with a delay: the message is redelivered later
    │   └── DependencyUnavailable     a server or API we need did not answer
    └── PermanentError            term + a dead-letter event: redelivery cannot help
        ├── UndecodableMessage        the payload is not a message we know
        └── UnroutableMessage         no handler is registered for the message's type

Anything else raised by a handler is a bug: it is retried like a ``RetryableError`` until the
consumer's delivery limit, then dead-lettered, so a poison message never loops forever.
"""

from __future__ import annotations


class TroikaError(Exception):
    """Root of every error Troika raises on purpose."""


class RetryableError(TroikaError):
    """The work may succeed if the message is delivered again later.

    Attributes:
        delay: Seconds to wait before redelivery; ``None`` lets the bus choose its back-off.
    """

    def __init__(self, message: str, *, delay: float | None = None) -> None:
        super().__init__(message)
        self.delay = delay


class DependencyUnavailable(RetryableError):
    """A server or API the handler needs did not answer.

    Attributes:
        dependency: What could not be reached, e.g. ``"llm"`` or ``"database"``.
    """

    def __init__(self, dependency: str, detail: str, *, delay: float | None = None) -> None:
        super().__init__(f"{dependency} is unavailable: {detail}", delay=delay)
        self.dependency = dependency


class PermanentError(TroikaError):
    """Delivering the message again cannot succeed; it is terminated and dead-lettered.

    Attributes:
        reason: A short, plain-language reason recorded on the dead-letter event.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class UndecodableMessage(PermanentError):
    """The payload does not decode as any known message type.

    Attributes:
        subject: The subject the payload arrived on.
        detail: The decoder's explanation.
    """

    def __init__(self, subject: str, detail: str) -> None:
        super().__init__(f"undecodable message on {subject}: {detail}")
        self.subject = subject
        self.detail = detail


class UnroutableMessage(PermanentError):
    """No handler is registered for the message's type on this service.

    Attributes:
        message_type: The message's type tag.
        service: The service that received it.
    """

    def __init__(self, message_type: str, service: str) -> None:
        super().__init__(f"{service} has no handler for {message_type!r}")
        self.message_type = message_type
        self.service = service
