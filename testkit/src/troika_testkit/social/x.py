"""X's API v2: OAuth 2.0 with PKCE, the signed-in user, media upload and posting tweets."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from troika_testkit.social.answers import Answer, Refused, json_answer, x_forbidden, x_invalid
from troika_testkit.social.pieces import digits, image_type, json_or_none
from troika_testkit.social.records import Post
from troika_testkit.social.world import Upload, World

if TYPE_CHECKING:
    from troika_testkit.social.records import Recorded
    from troika_testkit.social.world import Route

__all__ = ["ROUTES", "X_MEDIA_LIMIT"]

X_MEDIA_LIMIT = 5 * 1024 * 1024


def _me(world: World, request: Recorded, _: re.Match[str]) -> Answer:
    account = world.account(request)
    data = {"id": account.id, "name": account.name, "username": account.username}
    return json_answer(200, {"data": data})


def _upload(world: World, request: Recorded, _: re.Match[str]) -> Answer:
    account = world.account(request)
    parts = {part.name: part for part in request.parts()}
    media = parts.get("media")
    if media is None:
        raise Refused(x_invalid("A multipart/form-data `media` field is required."))
    category = parts.get("media_category")
    if category is None or category.text() not in (
        "tweet_image",
        "tweet_gif",
        "dm_image",
        "dm_gif",
    ):
        raise Refused(x_invalid("`media_category` must be tweet_image for an image."))
    kind = image_type(media.data)
    if kind is None:
        raise Refused(x_invalid("media type unrecognized: not a PNG, JPEG, GIF or WEBP."))
    if len(media.data) > X_MEDIA_LIMIT:
        raise Refused(x_invalid(f"File size exceeds {X_MEDIA_LIMIT} bytes."))
    media_id = digits(19)
    with world.lock:
        world.x_media[media_id] = Upload(account.id, media.data)
    data = {
        "id": media_id,
        "media_key": f"3_{media_id}",
        "size": len(media.data),
        "expires_after_secs": 86400,
        "image": {"image_type": kind},
    }
    return json_answer(200, {"data": data})


def _tweet(world: World, request: Recorded, _: re.Match[str]) -> Answer:
    account = world.account(request)
    document = json_or_none(request.body)
    if not isinstance(document, dict):
        raise Refused(x_invalid("The body must be a JSON object."))
    text = document.get("text")
    media = document.get("media") or {}
    media_ids = media.get("media_ids", []) if isinstance(media, dict) else None
    reply = document.get("reply")
    reply_to = reply.get("in_reply_to_tweet_id") if isinstance(reply, dict) else None
    if not isinstance(media_ids, list) or not all(isinstance(m, str) for m in media_ids):
        raise Refused(x_invalid("`media.media_ids` must be a list of strings."))
    if not (isinstance(text, str) or (text is None and media_ids)):
        raise Refused(x_invalid("`text` must be a string (or media given)."))
    if not 0 <= len(media_ids) <= 4:
        raise Refused(x_invalid("At most 4 media ids."))
    if reply is not None and not isinstance(reply_to, str):
        raise Refused(x_invalid("`reply.in_reply_to_tweet_id` must be a string."))
    with world.lock:
        images = []
        for media_id in media_ids:
            upload = world.x_media.get(media_id)
            if upload is None or upload.owner != account.id:
                raise Refused(x_invalid(f"Your media IDs are invalid: {media_id}"))
            images.append(upload.data)
        if reply_to is not None and reply_to not in world.x_tweets:
            raise Refused(
                x_forbidden(
                    "You attempted to reply to a Tweet that is deleted or not visible to you."
                )
            )
        if text and any(
            p.platform == "x" and p.account_id == account.id and p.text == text for p in world.posts
        ):
            raise Refused(
                x_forbidden("You are not allowed to create a Tweet with duplicate content.")
            )
        tweet_id = digits(19)
        world.x_tweets.add(tweet_id)
        world.posts.append(
            Post(
                platform="x",
                id=tweet_id,
                url=f"https://x.com/{account.username}/status/{tweet_id}",
                account_id=account.id,
                text=text or "",
                media=images,
                reply_to=reply_to,
                raw=document,
            )
        )
    data = {"id": tweet_id, "text": text or "", "edit_history_tweet_ids": [tweet_id]}
    return json_answer(201, {"data": data})


ROUTES: list[Route] = [
    ("GET", re.compile(r"/i/oauth2/authorize"), World.authorize),
    ("POST", re.compile(r"/2/oauth2/token"), World.token),
    ("GET", re.compile(r"/2/users/me"), _me),
    ("POST", re.compile(r"/2/media/upload"), _upload),
    ("POST", re.compile(r"/2/tweets"), _tweet),
]
