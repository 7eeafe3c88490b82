"""``post_to_twitter``: a post on X from the person's account, through tweepy (API v2).

Images go first, one at a time and in the post's order, through v2 media upload (tweepy's
v2 client has none, so it is one multipart request with httpx); then tweepy creates the post
with their ids. tweepy calls ``https://api.twitter.com`` directly: its session is swapped for
one that sends those requests to the configured base address instead, so a new address or a
test server is one setting away. The token goes only in the ``Authorization`` header, and
tweepy's request log (which would print that header) stays off.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import anyio.to_thread
import httpx
import requests
import tweepy

from troika_executor.social.refusals import refusal

if TYPE_CHECKING:
    from troika_executor.social.media import Image
    from troika_shared.social import TwitterPostArgs

__all__ = ["post_to_twitter"]

# tweepy logs each request's headers, the bearer token included, at DEBUG.
logging.getLogger("tweepy.client").setLevel(logging.INFO)

LABEL = "X"
_TWEEPY_HOST = "https://api.twitter.com"
_TIMEOUT_S = 60


class _Rebased(requests.Session):
    """A session that sends tweepy's requests to ``base`` instead of X's fixed address."""

    def __init__(self, base: str) -> None:
        super().__init__()
        self.base = base.rstrip("/")

    def request(
        self,
        method: str,
        url: str | bytes,
        *args: Any,  # noqa: ANN401
        **kwargs: Any,  # noqa: ANN401
    ) -> requests.Response:
        url = url.decode() if isinstance(url, bytes) else url
        if url.startswith(_TWEEPY_HOST):
            url = self.base + url[len(_TWEEPY_HOST) :]
        kwargs.setdefault("timeout", _TIMEOUT_S)
        return super().request(method, url, *args, **kwargs)


async def _upload(http: httpx.AsyncClient, image: Image) -> str:
    response = await http.post(
        "/2/media/upload",
        data={"media_category": "tweet_image", "media_type": image.content_type},
        files={"media": (image.name, image.data, image.content_type)},
    )
    if not response.is_success:
        raise refusal(LABEL, response)
    return str(response.json()["data"]["id"])


def _create(account: dict[str, Any], args: TwitterPostArgs, media_ids: list[str]) -> str:
    client = tweepy.Client(bearer_token=account["access_token"])
    client.session = _Rebased(account["api_url"])
    try:
        response = client.create_tweet(
            text=args.text,
            media_ids=media_ids or None,
            in_reply_to_tweet_id=args.reply_to,
            user_auth=False,  # an OAuth 2.0 user token goes as the bearer token
        )
    except tweepy.HTTPException as exc:
        raise refusal(LABEL, _as_httpx(exc.response)) from None
    finally:
        client.session.close()
    return str(response.data["id"])


def _as_httpx(response: requests.Response) -> httpx.Response:
    return httpx.Response(
        response.status_code, headers=dict(response.headers), content=response.content
    )


async def post_to_twitter(
    args: TwitterPostArgs, account: dict[str, Any], images: list[Image]
) -> tuple[str, str]:
    """Posts; returns the post's id and address.

    Raises:
        Refused: X refused a request (nothing more is sent after a refusal).
        httpx.HTTPError, requests.RequestException: X could not be reached, or did not
            answer (the post may have gone out).
    """
    headers = {"Authorization": f"Bearer {account['access_token']}"}
    async with httpx.AsyncClient(
        base_url=account["api_url"], headers=headers, timeout=_TIMEOUT_S
    ) as http:
        media_ids = [await _upload(http, image) for image in images]
    post_id = await anyio.to_thread.run_sync(_create, account, args, media_ids)
    username = account.get("username") or account.get("account_id")
    return post_id, f"https://x.com/{username}/status/{post_id}"
