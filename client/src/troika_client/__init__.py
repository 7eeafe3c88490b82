"""A client of Troika's gateway: the HTTP API, a signed-in session, and the live feed.

Used by the ``troika`` command, the web app and the test kit alike::

    async with Session.open("http://127.0.0.1:8000") as session:
        await session.login("ada", password)
        task = await session.create_task({"objective": "Write a haiku to haiku.txt"})
        async for event in LiveFeed(session.ws_url, session.token, {task["id"]: 0}).events():
            ...
"""

from troika_client.errors import ApiError, field_errors
from troika_client.gateway import Gateway, ws_url_of
from troika_client.live import CONNECTED, LiveEvent, LiveFeed, LiveRefused
from troika_client.session import FileTokenStore, Session, TokenStore, expires_soon

__all__ = [
    "CONNECTED",
    "ApiError",
    "FileTokenStore",
    "Gateway",
    "LiveEvent",
    "LiveFeed",
    "LiveRefused",
    "Session",
    "TokenStore",
    "expires_soon",
    "field_errors",
    "ws_url_of",
]
