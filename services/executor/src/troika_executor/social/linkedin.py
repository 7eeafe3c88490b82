"""``post_to_linkedin``: the Posts API, as the member or an organisation they administer.

Every request names the API version (``LinkedIn-Version``) and the Rest.li protocol; an image
is registered first (``initializeUpload``), its bytes put to the address LinkedIn gives, then
the post refers to it. LinkedIn answers a created post with its URN in ``x-restli-id``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import httpx

from troika_executor.social.refusals import refusal

if TYPE_CHECKING:
    from troika_executor.social.media import Image
    from troika_shared.social import LinkedInPostArgs

__all__ = ["post_to_linkedin"]

LABEL = "LinkedIn"
_TIMEOUT_S = 60


async def post_to_linkedin(
    args: LinkedInPostArgs, account: dict[str, Any], image: Image | None
) -> tuple[str, str]:
    """Posts; returns the post's URN and address.

    Raises:
        Refused: LinkedIn refused a request.
    """
    author = (
        f"urn:li:organization:{args.organization}"
        if args.organization
        else f"urn:li:person:{account['account_id']}"
    )
    token = {"Authorization": f"Bearer {account['access_token']}"}
    headers = {**token, "LinkedIn-Version": str(account["api_version"]),
               "X-Restli-Protocol-Version": "2.0.0"}  # fmt: skip
    post: dict[str, Any] = {
        "author": author,
        "commentary": args.text,
        "visibility": "PUBLIC",
        "distribution": {
            "feedDistribution": "MAIN_FEED",
            "targetEntities": [],
            "thirdPartyDistributionChannels": [],
        },
        "lifecycleState": "PUBLISHED",
        "isReshareDisabledByAuthor": False,
    }
    async with httpx.AsyncClient(
        base_url=account["api_url"], headers=headers, timeout=_TIMEOUT_S
    ) as http:
        if image is not None:
            started = await http.post(
                "/rest/images",
                params={"action": "initializeUpload"},
                json={"initializeUploadRequest": {"owner": author}},
            )
            if not started.is_success:
                raise refusal(LABEL, started)
            value = started.json()["value"]
            # The upload address is LinkedIn's own; only the token goes with the bytes.
            put = await http.put(
                value["uploadUrl"], content=image.data,
                headers={**token, "Content-Type": image.content_type},
            )  # fmt: skip
            if not put.is_success:
                raise refusal(LABEL, put)
            post["content"] = {"media": {"id": value["image"], "altText": args.image_alt}}
        created = await http.post("/rest/posts", json=post)
        if not created.is_success:
            raise refusal(LABEL, created)
    urn = created.headers.get("x-restli-id") or created.headers.get("x-linkedin-id") or ""
    return urn, f"https://www.linkedin.com/feed/update/{urn}/" if urn else ""
