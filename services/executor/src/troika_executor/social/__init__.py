"""The posting tools: X/Twitter, Instagram, LinkedIn and Facebook, from the person's own
accounts.

The account to post from arrives sealed with the approved call (its token, the platform's
address and API version, chosen and refreshed by the gateway); the token is sent only in the
``Authorization`` header and never appears in an outcome. A refusal becomes a clear tool error
that says whether and when to retry.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import anyio.to_thread
import httpx
import requests

from troika_executor.social.linkedin import post_to_linkedin
from troika_executor.social.media import Image, load_image, media_problems
from troika_executor.social.meta import post_to_facebook, post_to_instagram
from troika_executor.social.refusals import PostProblem, Refused
from troika_executor.social.twitter import post_to_twitter
from troika_shared.messages import ToolOutcome
from troika_shared.social import (
    FacebookPostArgs,
    InstagramPostArgs,
    LinkedInPostArgs,
    TwitterPostArgs,
    is_address,
)

if TYPE_CHECKING:
    from pydantic import BaseModel

    from troika_executor.workspace import Workspace
    from troika_shared.social import Platform

__all__ = ["media_problems", "post"]


def _not_connected(platform: Platform) -> ToolOutcome:
    return ToolOutcome(ok=False, error=(
        f"no {platform.label} account came with this call: the person must connect one in "
        "their profile before anything can be posted"
    ))  # fmt: skip


async def _load(workspace: Workspace, name: str, platform: Platform) -> Image:
    return await anyio.to_thread.run_sync(load_image, workspace, name, platform)


async def post(
    platform: Platform, args: BaseModel, credentials: dict[str, Any], workspace: Workspace
) -> ToolOutcome:
    """Posts to ``platform`` with the account that came sealed with the call; says where the
    post is."""
    account = credentials.get(platform.key)
    if not account:
        return _not_connected(platform)
    try:
        match args:
            case TwitterPostArgs():
                images = [await _load(workspace, name, platform) for name in args.images]
                post_id, url = await post_to_twitter(args, account, images)
            case InstagramPostArgs():
                post_id, url = await post_to_instagram(args, account)
            case LinkedInPostArgs():
                image = await _load(workspace, args.image, platform) if args.image else None
                post_id, url = await post_to_linkedin(args, account, image)
            case FacebookPostArgs():
                photos: list[str | Image] = [
                    name if is_address(name) else await _load(workspace, name, platform)
                    for name in args.images
                ]
                post_id, url = await post_to_facebook(args, account, photos)
            case _:
                raise TypeError(f"not a post: {type(args).__name__}")
    except PostProblem as exc:
        return ToolOutcome(ok=False, error=f"nothing was posted: {exc}")
    except Refused as exc:
        return exc.outcome()
    except (httpx.HTTPError, requests.RequestException) as exc:
        return ToolOutcome(ok=False, error=(
            f"{platform.label} could not be reached or did not answer ({type(exc).__name__}); "
            "the post may or may not have gone out: check the account before posting again"
        ))  # fmt: skip
    who = account.get("username") or account.get("name") or account.get("account_id")
    shown = (
        f"@{who}" if platform.key in ("twitter", "instagram") and account.get("username") else who
    )
    return ToolOutcome(
        ok=True, output=f"Posted to {platform.label} as {shown}: {url} (id {post_id})"
    )
