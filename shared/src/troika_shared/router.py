"""Dispatch of decoded messages to a service's handlers, by message type.

Handlers are pure with respect to the bus: a message in, the messages to publish out. The service
runner publishes what they return, then acknowledges the message.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from troika_shared.errors import UnroutableMessage
from troika_shared.messages import Message

__all__ = ["Handler", "Router"]

M = TypeVar("M", bound=Message)
Handler = Callable[[M], Awaitable[Sequence[Message]]]


class Router:
    """Maps message types to handlers for one service.

    Args:
        service: The service's name, for errors.
    """

    def __init__(self, service: str) -> None:
        self.service = service
        self._handlers: dict[type[Message], Callable[[Any], Awaitable[Sequence[Message]]]] = {}

    def add(self, message_type: type[M], handler: Handler[M]) -> None:
        """Routes ``message_type`` to ``handler``.

        Raises:
            ValueError: The type already has a handler.
        """
        if message_type in self._handlers:
            raise ValueError(f"{message_type.__name__} already has a handler")
        self._handlers[message_type] = handler

    def route(self, message_type: type[M]) -> Callable[[Handler[M]], Handler[M]]:
        """Decorator form of :meth:`add`."""

        def register(handler: Handler[M]) -> Handler[M]:
            self.add(message_type, handler)
            return handler

        return register

    @property
    def message_types(self) -> tuple[type[Message], ...]:
        """The types this router handles."""
        return tuple(self._handlers)

    async def dispatch(self, message: Message) -> Sequence[Message]:
        """Runs the handler of the message's type.

        Raises:
            UnroutableMessage: No handler is registered for the message's type.
        """
        handler = self._handlers.get(type(message))
        if handler is None:
            raise UnroutableMessage(message.type, self.service)
        return await handler(message)
