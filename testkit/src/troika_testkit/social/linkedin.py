"""LinkedIn's API: OAuth 2.0 with PKCE, the member's userinfo, image uploads and posts, with
the version headers its ``/rest`` endpoints require."""

from __future__ import annotations

import re
import time
from typing import TYPE_CHECKING, Any

from troika_testkit.social.answers import Answer, Refused, json_answer, li_error
from troika_testkit.social.pieces import alnum, digits, first, image_type, json_or_none
from troika_testkit.social.records import Post
from troika_testkit.social.world import Image, World

if TYPE_CHECKING:
    from troika_testkit.social.records import Account, Recorded
    from troika_testkit.social.world import Route

__all__ = ["LINKEDIN_COMMENTARY_LIMIT", "ROUTES", "check_headers"]

LINKEDIN_COMMENTARY_LIMIT = 3000


def _userinfo(world: World, request: Recorded, _: re.Match[str]) -> Answer:
    account = world.account(request)
    given, _space, family = account.name.partition(" ")
    document = {
        "sub": account.id,
        "name": account.name,
        "given_name": given,
        "family_name": family,
        "locale": {"country": "US", "language": "en"},
    }
    return json_answer(200, document)


def _initialize(world: World, request: Recorded, _: re.Match[str]) -> Answer:
    account = world.account(request)
    if first(request, "action") != "initializeUpload":
        raise Refused(li_error(400, "ILLEGAL_ARGUMENT", "Expected ?action=initializeUpload"))
    document = _li_json(request)
    asked = document.get("initializeUploadRequest")
    owner = asked.get("owner") if isinstance(asked, dict) else None
    if not isinstance(owner, str):
        raise Refused(
            li_error(
                422,
                "UNPROCESSABLE_ENTITY",
                "Field /initializeUploadRequest/owner is required",
            )
        )
    if owner not in _li_urns(account):
        raise Refused(
            li_error(
                403,
                "ACCESS_DENIED",
                "Not enough permissions to access: images.ACTION.20251101",
                serviceErrorCode=100,
            )
        )
    number = "D" + alnum(18)
    with world.lock:
        world.li_images[number] = Image(owner, account.id)
    value = {
        "uploadUrlExpiresAt": int((time.time() + 86400) * 1000),
        "uploadUrl": f"{world.url}/linkedin/upload/{number}",
        "image": f"urn:li:image:{number}",
    }
    return json_answer(200, {"value": value})


def _upload(world: World, request: Recorded, match: re.Match[str]) -> Answer:
    account = world.account(request)
    with world.lock:
        image = world.li_images.get(match["id"])
        if image is None:
            raise Refused(li_error(404, "NOT_FOUND", "No upload is waiting at this address"))
        if image.uploader != account.id:
            raise Refused(li_error(403, "ACCESS_DENIED", "This upload belongs to another member"))
        if image_type(request.body) not in ("image/jpeg", "image/png", "image/gif"):
            raise Refused(
                li_error(400, "ILLEGAL_ARGUMENT", "The upload is not a JPG, GIF or PNG image")
            )
        image.data = request.body
    return Answer(201)


def _post(world: World, request: Recorded, _: re.Match[str]) -> Answer:
    account = world.account(request)
    document = _li_json(request)
    author = document.get("author")
    if author not in _li_urns(account):
        raise Refused(
            li_error(
                403,
                "ACCESS_DENIED",
                "Not enough permissions to access: partnerApiPostsExternal.CREATE.20251101",
                serviceErrorCode=100,
            )
        )
    for name in ("commentary", "visibility", "distribution", "lifecycleState"):
        if name not in document:
            raise Refused(li_error(422, "UNPROCESSABLE_ENTITY", f"Field /{name} is required"))
    commentary = document["commentary"]
    if not isinstance(commentary, str):
        raise Refused(li_error(422, "UNPROCESSABLE_ENTITY", "/commentary must be a string"))
    if len(commentary) > LINKEDIN_COMMENTARY_LIMIT:
        raise Refused(
            li_error(
                422,
                "UNPROCESSABLE_ENTITY",
                f"/commentary is {len(commentary)} characters long; at most "
                f"{LINKEDIN_COMMENTARY_LIMIT} are taken",
            )
        )
    with world.lock:
        images = [_li_image(world, urn, author) for urn in _li_content_images(document)]
        number = digits(19)
        urn = f"urn:li:share:{number}"
        world.posts.append(
            Post(
                platform="linkedin",
                id=urn,
                url=f"https://www.linkedin.com/feed/update/{urn}/",
                account_id=account.id,
                text=commentary,
                media=images,
                author=author,
                raw=document,
            )
        )
    return Answer(201, b"", {"x-restli-id": urn, "x-linkedin-id": urn})


def _li_image(world: World, urn: str, author: object) -> bytes:
    """The bytes of an uploaded image the author owns."""
    image = world.li_images.get(urn.removeprefix("urn:li:image:"))
    if image is None or image.data is None:
        raise Refused(li_error(400, "ILLEGAL_ARGUMENT", f"{urn} was not uploaded"))
    if image.owner != author:
        raise Refused(
            li_error(400, "ILLEGAL_ARGUMENT", f"{urn} belongs to {image.owner}, not {author}")
        )
    return image.data


def check_headers(request: Recorded) -> None:
    """Refuses a ``/rest`` request without the version headers LinkedIn requires."""
    version = request.headers.get("linkedin-version")
    if not version:
        raise Refused(
            li_error(
                400,
                "VERSION_MISSING",
                "A version must be present. Please specify a version by adding the "
                "LinkedIn-Version header.",
            )
        )
    if not re.fullmatch(r"\d{6}", version):
        raise Refused(
            li_error(426, "NONEXISTENT_VERSION", f"Requested version {version} is not active")
        )
    if request.headers.get("x-restli-protocol-version") != "2.0.0":
        raise Refused(
            li_error(
                400,
                "PROTOCOL_VERSION_MISSING",
                "The X-Restli-Protocol-Version header must be 2.0.0.",
            )
        )


def _li_json(request: Recorded) -> dict[str, Any]:
    document = json_or_none(request.body)
    if not isinstance(document, dict):
        raise Refused(li_error(400, "ILLEGAL_ARGUMENT", "The body must be a JSON object"))
    return document


def _li_urns(account: Account) -> list[str]:
    """Who the member may post as: itself and its organizations."""
    return [f"urn:li:person:{account.id}"] + [
        f"urn:li:organization:{org}" for org in account.organizations
    ]


def _li_content_images(document: dict[str, Any]) -> list[str]:
    """The image URNs of a post's ``content.media`` or ``content.multiImage``."""
    content = document.get("content")
    if not isinstance(content, dict):
        return []
    media = content.get("media")
    if isinstance(media, dict) and isinstance(media.get("id"), str):
        found = [media["id"]]
    else:
        multi = content.get("multiImage")
        images = multi.get("images") if isinstance(multi, dict) else None
        found = [i.get("id") for i in images or [] if isinstance(i, dict)]
    return [str(urn) for urn in found]


ROUTES: list[Route] = [
    ("GET", re.compile(r"/oauth/v2/authorization"), World.authorize),
    ("POST", re.compile(r"/oauth/v2/accessToken"), World.token),
    ("GET", re.compile(r"/v2/userinfo"), _userinfo),
    ("POST", re.compile(r"/rest/images"), _initialize),
    ("PUT", re.compile(r"/upload/(?P<id>[A-Za-z0-9_-]+)"), _upload),
    ("POST", re.compile(r"/rest/posts"), _post),
]
