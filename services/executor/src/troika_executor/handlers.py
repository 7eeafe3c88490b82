"""The executor's handlers: a message in, the messages to publish out.

The agent logic arrives with the LLM layer. Until then the executor routes no message type, so a
request that reaches it is dead-lettered with the reason "executor has no handler", visibly, rather
than acknowledged and lost.
"""

from __future__ import annotations

from troika_shared.router import Router


def build_router() -> Router:
    """The executor's router."""
    return Router("executor")
