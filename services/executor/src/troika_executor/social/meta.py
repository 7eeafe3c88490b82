"""``post_to_instagram`` and ``post_to_facebook``: Meta's Graph API, token in the header.

Instagram publishes in two steps: a media container per image (Instagram fetches the image
from its address itself), then, once the container is ready, ``media_publish``. An image from
the task's folder goes by the signed link the gateway made for this call. A Facebook Page
takes a message with a link on its feed, one photo as a photo post, or several photos
uploaded unpublished and attached to one feed post.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import TYPE_CHECKING, Any

import httpx

from troika_executor.social.refusals import PostProblem, Refused, meta_refusal
from troika_shared.social import is_address

if TYPE_CHECKING:
    from troika_executor.social.media import Image
    from troika_shared.social import FacebookPostArgs, InstagramPostArgs

__all__ = ["post_to_facebook", "post_to_instagram"]

_TIMEOUT_S = 60
_READY_WITHIN_S = 120  # how long a container may take to be ready for publishing


def _client(account: dict[str, Any]) -> httpx.AsyncClient:
    base = f"{account['api_url'].rstrip('/')}/{account['api_version']}"
    headers = {"Authorization": f"Bearer {account['access_token']}"}
    return httpx.AsyncClient(base_url=base, headers=headers, timeout=_TIMEOUT_S)


async def _call(
    http: httpx.AsyncClient,
    label: str,
    method: str,
    path: str,
    **kwargs: Any,  # noqa: ANN401 - httpx's request options
) -> dict[str, Any]:
    response = await http.request(method, path, **kwargs)
    if not response.is_success:
        raise meta_refusal(label, response)
    body: dict[str, Any] = response.json()
    return body


def _address(image: str, account: dict[str, Any]) -> str:
    """The address Instagram fetches an image from.

    Raises:
        PostProblem: A file of the task's folder with no public link to it.
    """
    if is_address(image):
        return image
    link = (account.get("media_links") or {}).get(image)
    if not link:
        raise PostProblem(
            f"Instagram fetches images by address, and {image!r} is in the task's folder, which "
            "is not reachable from the internet here (the operator sets TROIKA_PUBLIC_URL to "
            "allow it): use an https address of the image instead"
        )
    return str(link)


async def post_to_instagram(args: InstagramPostArgs, account: dict[str, Any]) -> tuple[str, str]:
    """Publishes; returns the media id and its address.

    Raises:
        Refused: Instagram refused a request, or a container failed.
        PostProblem: An image has no address Instagram can fetch.
    """
    label, user = "Instagram", account["account_id"]
    addresses = [_address(image, account) for image in args.images]
    async with _client(account) as http:
        if len(addresses) == 1:
            form = {"image_url": addresses[0], "caption": args.caption}
            container = (await _call(http, label, "POST", f"/{user}/media", data=form))["id"]
        else:
            children = [
                (await _call(http, label, "POST", f"/{user}/media",
                             data={"image_url": address, "is_carousel_item": "true"}))["id"]
                for address in addresses
            ]  # fmt: skip
            form = {"media_type": "CAROUSEL", "children": ",".join(children),
                    "caption": args.caption}  # fmt: skip
            container = (await _call(http, label, "POST", f"/{user}/media", data=form))["id"]
        await _ready(http, label, str(container))
        published = await _call(http, label, "POST", f"/{user}/media_publish",
                                data={"creation_id": container})  # fmt: skip
        media_id = str(published["id"])
        shown = await _call(http, label, "GET", f"/{media_id}", params={"fields": "permalink"})
    return media_id, str(shown.get("permalink") or "")


async def _ready(http: httpx.AsyncClient, label: str, container: str) -> None:
    """Waits until Instagram has the container's media ready.

    Raises:
        Refused: The container failed or expired, or it was not ready in time.
    """
    deadline = time.monotonic() + _READY_WITHIN_S
    pause = 0.5
    while True:
        status = await _call(http, label, "GET", f"/{container}",
                             params={"fields": "status_code"})  # fmt: skip
        code = status.get("status_code")
        if code in ("FINISHED", "PUBLISHED"):
            return
        if code in ("ERROR", "EXPIRED"):
            raise Refused(label, 0, f"the media could not be prepared ({code})")
        if time.monotonic() + pause > deadline:
            raise Refused(label, 0, f"the media was not ready after {_READY_WITHIN_S} s")
        await asyncio.sleep(pause)
        pause = min(pause * 2, 5.0)


def _photo(image: str | Image) -> dict[str, Any]:
    """A photo's request: by address, or the file's bytes as the ``source`` part."""
    if isinstance(image, str):
        return {"data": {"url": image}}
    return {"files": {"source": (image.name, image.data, image.content_type)}}


async def post_to_facebook(
    args: FacebookPostArgs, account: dict[str, Any], images: list[str | Image]
) -> tuple[str, str]:
    """Posts to the Page; returns the post's id and address.

    Raises:
        Refused: Facebook refused a request.
    """
    label, page = "Facebook", account["account_id"]
    async with _client(account) as http:
        if len(images) == 1:
            request = _photo(images[0])
            request.setdefault("data", {}).update({"message": args.text, "published": "true"})
            posted = await _call(http, label, "POST", f"/{page}/photos", **request)
            post_id = str(posted.get("post_id") or posted["id"])
        else:
            form: dict[str, str] = {"message": args.text}
            if args.link:
                form["link"] = args.link
            for n, image in enumerate(images):
                request = _photo(image)
                request.setdefault("data", {})["published"] = "false"
                photo = await _call(http, label, "POST", f"/{page}/photos", **request)
                form[f"attached_media[{n}]"] = json.dumps({"media_fbid": str(photo["id"])})
            post_id = str((await _call(http, label, "POST", f"/{page}/feed", data=form))["id"])
        shown = await _call(http, label, "GET", f"/{post_id}", params={"fields": "permalink_url"})
    return post_id, str(shown.get("permalink_url") or "")
