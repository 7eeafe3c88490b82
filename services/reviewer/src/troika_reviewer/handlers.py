"""The reviewer's handlers: a message in, the messages to publish out.

The agent logic arrives with the LLM layer. Until then the reviewer routes no message type, so a
request that reaches it is dead-lettered with the reason "reviewer has no handler", visibly, rather
than acknowledged and lost.
"""

from __future__ import annotations

from troika_shared.router import Router


def build_router() -> Router:
    """The reviewer's router."""
    return Router("reviewer")
