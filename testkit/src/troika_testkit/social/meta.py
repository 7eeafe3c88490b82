"""Meta's Graph API for Instagram (Instagram Login) and Facebook Pages: refreshing tokens,
reading objects, Instagram's containers and publishing, Facebook's feed and photos."""

from __future__ import annotations

import http.client
import json
import re
import urllib.request
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from troika_testkit.social.answers import (
    Answer,
    Refused,
    json_answer,
    meta_error,
    meta_unsupported,
)
from troika_testkit.social.pieces import alnum, digits, first, image_type, json_or_none
from troika_testkit.social.records import Post
from troika_testkit.social.world import Container, Upload

if TYPE_CHECKING:
    from troika_testkit.social.records import Account, Recorded
    from troika_testkit.social.world import Route, World

__all__ = [
    "FACEBOOK_ROUTES",
    "FETCH_LIMIT",
    "FETCH_TIMEOUT_S",
    "INSTAGRAM_CAPTION_LIMIT",
    "INSTAGRAM_ROUTES",
    "META_TOKEN_LIFETIME_S",
]

FETCH_LIMIT = 8 * 1024 * 1024  # Instagram's and Facebook's largest photo
FETCH_TIMEOUT_S = 10.0
INSTAGRAM_CAPTION_LIMIT = 2200
META_TOKEN_LIFETIME_S = 5_184_000  # 60 days

_VERSION = r"/v\d+\.\d+"


# --- small pieces ------------------------------------------------------------------------------


def _media_kind(request: Recorded) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


def _fetch(url: str) -> bytes | None:
    """What ``url`` serves (at most :data:`FETCH_LIMIT` bytes), or ``None`` if it cannot be read;
    proxies in the environment are not used (the servers are on loopback)."""
    if urlsplit(url).scheme not in ("http", "https"):
        return None
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=FETCH_TIMEOUT_S) as response:
            data: bytes = response.read(FETCH_LIMIT + 1)
    except (OSError, ValueError, http.client.HTTPException):
        return None
    return data if len(data) <= FETCH_LIMIT else None


def _params(request: Recorded) -> dict[str, str]:
    """A Graph API call's parameters: the query's, then the body's (form, multipart or JSON)."""
    found = {name: values[0] for name, values in request.query.items()}
    kind = _media_kind(request)
    if kind == "multipart/form-data":
        found.update(
            {p.name: p.text() for p in request.parts() if p.filename is None and p.name != "source"}
        )
    elif kind == "application/json":
        document = json_or_none(request.body)
        if isinstance(document, dict):
            found.update(
                {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in document.items()}
            )
    elif request.body:
        found.update(request.form())
    found.pop("access_token", None)
    return found


def _fields(request: Recorded) -> list[str]:
    return [name.strip() for name in (first(request, "fields") or "").split(",") if name.strip()]


def _pick(request: Recorded, available: dict[str, object], node: str) -> dict[str, object]:
    """The fields the request asks for (and ``id``), as the Graph API returns them."""
    found: dict[str, object] = {}
    for name in _fields(request):
        if name not in available:
            raise Refused(
                meta_error(
                    400,
                    100,
                    f"(#100) Tried accessing nonexisting field ({name}) on node type ({node})",
                )
            )
        found[name] = available[name]
    found["id"] = available["id"]
    return found


def _own(account: Account, ident: str, *, facebook: bool = False) -> None:
    """Refuses a write to another account's edge."""
    if ident in ("me", account.id):
        return
    if facebook:
        raise Refused(
            meta_error(
                403,
                200,
                "(#200) If posting to a page, requires both pages_read_engagement and "
                "pages_manage_posts permission with page token",
            )
        )
    raise Refused(meta_unsupported("post", ident))


# --- Instagram -----------------------------------------------------------------------------------


def _ig_refresh(world: World, request: Recorded, _: re.Match[str]) -> Answer:
    account = world.account(request)
    if first(request, "grant_type") != "ig_refresh_token":
        raise Refused(meta_error(400, 100, "(#100) grant_type must be ig_refresh_token"))
    world.renew(account)
    document = {
        "access_token": account.access_token,
        "token_type": "bearer",
        "expires_in": META_TOKEN_LIFETIME_S,
    }
    return json_answer(200, document)


def _ig_user(request: Recorded, account: Account) -> Answer:
    available: dict[str, object] = {
        "id": account.id,
        "user_id": account.id,
        "username": account.username,
        "name": account.name,
        "account_type": "BUSINESS",
    }
    return json_answer(200, _pick(request, available, "User"))


def _ig_object(world: World, request: Recorded, match: re.Match[str]) -> Answer:
    account = world.account(request)
    ident = match["id"]
    if ident in ("me", account.id):
        return _ig_user(request, account)
    with world.lock:
        container = world.ig_containers.get(ident)
        media = world.ig_media.get(ident)
        if container is not None and container.owner == account.id:
            status = container.poll()
            texts = {
                "IN_PROGRESS": "In Progress: Media is still being processed.",
                "FINISHED": "Finished: Media has been uploaded and is ready to be published.",
                "PUBLISHED": "Published: Media has been published.",
            }
            available: dict[str, object] = {
                "id": ident,
                "status_code": status,
                "status": texts[status],
            }
            return json_answer(200, _pick(request, available, "ShadowIGMediaBuilder"))
        if media is not None and media.account_id == account.id:
            available = {
                "id": ident,
                "permalink": media.url,
                "caption": media.text,
                "media_type": "CAROUSEL_ALBUM" if len(media.media) > 1 else "IMAGE",
                "username": account.username,
            }
            return json_answer(200, _pick(request, available, "Media"))
    raise Refused(meta_unsupported("get", ident))


def _ig_create(world: World, request: Recorded, match: re.Match[str]) -> Answer:
    account = world.account(request)
    _own(account, match["id"])
    form = _params(request)
    caption = form.get("caption", "")
    if len(caption) > INSTAGRAM_CAPTION_LIMIT:
        raise Refused(
            meta_error(
                400,
                100,
                "(#100) The caption is too long: at most 2,200 characters.",
                error_user_title="Caption too long",
            )
        )
    media_type = form.get("media_type", "IMAGE").upper()
    if media_type == "CAROUSEL":
        children = [c.strip() for c in form.get("children", "").split(",") if c.strip()]
        with world.lock:
            for child in children:
                item = world.ig_containers.get(child)
                if item is None or item.owner != account.id or item.kind != "item":
                    raise Refused(meta_error(400, 100, f"(#100) Invalid carousel item: {child}"))
        if not 2 <= len(children) <= 10:
            raise Refused(meta_error(400, 100, "(#100) A carousel has between 2 and 10 items"))
        container = Container(account.id, "carousel", [], children, caption, form)
    elif media_type == "IMAGE":
        image_url = form.get("image_url")
        if not image_url:
            raise Refused(meta_error(400, 100, "(#100) The parameter image_url is required"))
        data = _fetch(image_url)
        if data is None or image_type(data) != "image/jpeg":
            raise Refused(
                meta_error(
                    400,
                    9004,
                    "Only photo or video can be accepted as media type.",
                    2207052,
                    error_user_title="Media download has failed",
                )
            )
        in_carousel = form.get("is_carousel_item", "").lower() == "true"
        kind = "item" if in_carousel else "image"
        container = Container(account.id, kind, [data], [], caption, form)
    else:
        raise Refused(
            meta_error(400, 100, f"(#100) Only IMAGE and CAROUSEL are taken: {media_type}")
        )
    container_id = digits(17)
    with world.lock:
        world.ig_containers[container_id] = container
    return json_answer(200, {"id": container_id})


def _ig_publish(world: World, request: Recorded, match: re.Match[str]) -> Answer:
    account = world.account(request)
    _own(account, match["id"])
    form = _params(request)
    creation_id = form.get("creation_id", "")
    with world.lock:
        container = world.ig_containers.get(creation_id)
        if container is None or container.owner != account.id or container.kind == "item":
            raise Refused(
                meta_error(400, 100, f"(#100) The parameter creation_id is invalid: {creation_id}")
            )
        if container.published:
            raise Refused(meta_error(400, 100, "(#100) The media has been published already"))
        if container.status != "FINISHED":
            raise Refused(
                meta_error(
                    400,
                    9007,
                    "Media ID is not available",
                    2207027,
                    error_user_title="Media not ready for publishing",
                    error_user_msg="The media is not ready for publishing, please wait.",
                )
            )
        images = list(container.images)
        for child in container.children:
            images.extend(world.ig_containers[child].images)
        media_id = digits(17)
        post = Post(
            platform="instagram",
            id=media_id,
            url=f"https://www.instagram.com/p/{alnum(11)}/",
            account_id=account.id,
            text=container.caption,
            media=images,
            raw={**container.form, **form},
        )
        container.published = True
        world.ig_media[media_id] = post
        world.posts.append(post)
    return json_answer(200, {"id": media_id})


# --- Facebook ------------------------------------------------------------------------------------


def _fb_object(world: World, request: Recorded, match: re.Match[str]) -> Answer:
    account = world.account(request)
    ident = match["id"]
    if ident in ("me", account.id):
        available: dict[str, object] = {"id": account.id, "name": account.name}
        return json_answer(200, _pick(request, available, "Page"))
    with world.lock:
        post = next((p for p in world.posts if p.platform == "facebook" and p.id == ident), None)
    if post is None:
        raise Refused(meta_unsupported("get", ident))
    available = {"id": post.id, "permalink_url": post.url, "message": post.text}
    return json_answer(200, _pick(request, available, "Post"))


def _fb_post(
    world: World, account: Account, text: str, media: list[bytes], raw: dict[str, Any]
) -> str:
    number = digits(16)
    post_id = f"{account.id}_{number}"
    url = f"https://www.facebook.com/{account.id}/posts/{number}"
    with world.lock:
        world.posts.append(Post("facebook", post_id, url, account.id, text, media, raw=raw))
    return post_id


def _fb_feed(world: World, request: Recorded, match: re.Match[str]) -> Answer:
    account = world.account(request)
    _own(account, match["id"], facebook=True)
    form = _params(request)
    attached = _attached_media(form)
    if not (form.get("message") or form.get("link") or attached):
        raise Refused(meta_error(400, 100, "(#100) A post needs a message or an attachment"))
    with world.lock:
        for index, fbid in enumerate(attached):
            photo = world.fb_photos.get(fbid)
            if photo is None or photo.owner != account.id:
                raise Refused(
                    meta_error(
                        400,
                        100,
                        f"(#100) param attached_media[{index}] has an invalid media_fbid: {fbid}",
                    )
                )
        images = [world.fb_photos.pop(fbid).data for fbid in attached]
        post_id = _fb_post(world, account, form.get("message", ""), images, dict(form))
    return json_answer(200, {"id": post_id})


def _fb_photos_post(world: World, request: Recorded, match: re.Match[str]) -> Answer:
    account = world.account(request)
    _own(account, match["id"], facebook=True)
    form = _params(request)
    source = next((p for p in request.parts() if p.name == "source"), None)
    if source is not None:
        data: bytes | None = source.data
    elif form.get("url"):
        data = _fetch(form["url"])
    else:
        data = None
    if data is None or image_type(data) is None:
        raise Refused(meta_error(400, 324, "(#324) Requires upload file"))
    photo_id = digits(16)
    if form.get("published", "true").lower() in ("false", "0"):
        with world.lock:
            world.fb_photos[photo_id] = Upload(account.id, data)
        return json_answer(200, {"id": photo_id})
    post_id = _fb_post(world, account, form.get("message", ""), [data], dict(form))
    return json_answer(200, {"id": photo_id, "post_id": post_id})


def _attached_media(form: dict[str, str]) -> list[str]:
    """The photo ids of ``attached_media[0]``, ``attached_media[1]``… (or one JSON list)."""
    entries: list[tuple[int, object]] = []
    listed = json_or_none(form["attached_media"].encode()) if "attached_media" in form else []
    entries.extend(enumerate(listed if isinstance(listed, list) else [None]))
    for name, value in form.items():
        indexed = re.fullmatch(r"attached_media\[(\d+)\]", name)
        if indexed:
            entries.append((int(indexed[1]), json_or_none(value.encode())))
    found = []
    for index, entry in sorted(entries, key=lambda e: e[0]):
        fbid = entry.get("media_fbid") if isinstance(entry, dict) else None
        if not isinstance(fbid, str):
            raise Refused(
                meta_error(
                    400,
                    100,
                    f"(#100) param attached_media[{index}] must be an object "
                    'like {"media_fbid":"<photo id>"}',
                )
            )
        found.append(fbid)
    return found


INSTAGRAM_ROUTES: list[Route] = [
    ("GET", re.compile(rf"(?:{_VERSION})?/refresh_access_token"), _ig_refresh),
    ("POST", re.compile(rf"{_VERSION}/(?P<id>me|\d+)/media"), _ig_create),
    ("POST", re.compile(rf"{_VERSION}/(?P<id>me|\d+)/media_publish"), _ig_publish),
    ("GET", re.compile(rf"{_VERSION}/(?P<id>me|\d+)"), _ig_object),
]

FACEBOOK_ROUTES: list[Route] = [
    ("POST", re.compile(rf"{_VERSION}/(?P<id>me|\d+)/feed"), _fb_feed),
    ("POST", re.compile(rf"{_VERSION}/(?P<id>me|\d+)/photos"), _fb_photos_post),
    ("GET", re.compile(rf"{_VERSION}/(?P<id>me|\d+(?:_\d+)?)"), _fb_object),
]
