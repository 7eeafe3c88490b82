"""Posting to X/Twitter, Instagram, LinkedIn and Facebook: the tools' arguments and each
platform's rules.

A post is checked against its platform's length and media rules when the agent proposes it,
so a text that is too long goes back to the agent to shorten before the person is asked;
nothing is ever cut. Which of the person's connected accounts posts is an argument the person
sees and may change on the approval form; the account's tokens never reach the model.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Self

from pydantic import Field, model_validator

from troika_shared.tool_args import ToolArgs

__all__ = [
    "PLATFORMS",
    "SOCIAL_TOOLS",
    "FacebookPostArgs",
    "InstagramPostArgs",
    "LinkedInPostArgs",
    "Platform",
    "TwitterPostArgs",
    "is_address",
    "platform_of",
    "x_length",
]


@dataclass(frozen=True, slots=True)
class Platform:
    """One platform's name and limits, as its documentation gives them.

    Attributes:
        image_types: The image kinds it takes, by file suffix (``jpg`` and ``jpeg`` alike).
        addresses: Whether an image may be given by its https address (the platform fetches
            it itself); else images come from the task's folder.
    """

    key: str
    label: str
    max_text: int
    max_images: int
    image_types: tuple[str, ...]
    max_image_bytes: int
    addresses: bool

    def image_problem(self, image: str) -> str | None:
        """What is wrong with an image's name or address (its type), if anything."""
        if is_address(image):
            if not self.addresses:
                return f"{self.label} takes images from the task's folder only, not addresses"
            return None
        suffix = PurePosixPath(image).suffix.lower().lstrip(".")
        if suffix not in self.image_types:
            kinds = ", ".join(kind.upper() for kind in self.image_types)
            return f"{image!r}: {self.label} takes {kinds} images"
        return None


_MB = 1024 * 1024
PLATFORMS: dict[str, Platform] = {
    platform.key: platform
    for platform in (
        Platform("twitter", "X (Twitter)", max_text=280, max_images=4,
                 image_types=("png", "jpg", "jpeg", "gif", "webp"), max_image_bytes=5 * _MB,
                 addresses=False),
        # The Graph API publishes JPEG images only; several make a carousel.
        Platform("instagram", "Instagram", max_text=2200, max_images=10,
                 image_types=("jpg", "jpeg"), max_image_bytes=8 * _MB, addresses=True),
        Platform("linkedin", "LinkedIn", max_text=3000, max_images=1,
                 image_types=("png", "jpg", "jpeg", "gif"), max_image_bytes=10 * _MB,
                 addresses=False),
        Platform("facebook", "Facebook", max_text=63206, max_images=10,
                 image_types=("png", "jpg", "jpeg", "gif", "webp", "bmp", "tiff"),
                 max_image_bytes=10 * _MB, addresses=True),
    )
}  # fmt: skip

# X counts a link as 23 characters whatever its length, and most characters outside Latin,
# Greek, Cyrillic and general punctuation (CJK, emoji) as 2.
_LINK = re.compile(r"https?://[^\s]+", re.IGNORECASE)
_LIGHT = ((0x0000, 0x10FF), (0x2000, 0x200D), (0x2010, 0x201F), (0x2032, 0x2037))
_LINK_LENGTH = 23


def x_length(text: str) -> int:
    """The length of a post as X counts it against its 280 limit."""
    text = unicodedata.normalize("NFC", text)
    total = 0
    position = 0
    for link in _LINK.finditer(text):
        total += _weighted(text[position : link.start()]) + _LINK_LENGTH
        position = link.end()
    return total + _weighted(text[position:])


def _weighted(text: str) -> int:
    return sum(1 if any(low <= ord(char) <= high for low, high in _LIGHT) else 2 for char in text)


def is_address(image: str) -> bool:
    """Whether an image is given by its address (else it is a path in the task's folder)."""
    return image.lower().startswith(("https://", "http://"))


_ACCOUNT = Field(
    default=None,
    max_length=200,
    description="Which of the person's connected accounts posts (its name, e.g. '@ada'); left "
    "out: their only account on this platform. The person confirms it on the approval form.",
)
_HASHTAG = re.compile(r"(?:^|\s)#\w", re.UNICODE)
_MENTION = re.compile(r"(?:^|\s)@[\w.]", re.UNICODE)


class _Post(ToolArgs):
    """A post: what every platform's arguments share."""

    def _check(self, platform: Platform, text: str, images: list[str]) -> None:
        length = x_length(text) if platform.key == "twitter" else len(text)
        if length > platform.max_text:
            counted = " as X counts it (a link is 23, most CJK characters and emoji 2)" * (
                platform.key == "twitter"
            )
            raise ValueError(
                f"the text is {length} characters{counted}; {platform.label} allows "
                f"{platform.max_text}: write a shorter text (nothing is cut)"
            )
        if len(images) > platform.max_images:
            raise ValueError(f"{platform.label} takes at most {platform.max_images} image(s)")
        for image in images:
            if problem := platform.image_problem(image):
                raise ValueError(problem)


class TwitterPostArgs(_Post):
    """Posts to X (Twitter) from the person's own account: text, optionally a reply, with up to
    4 images from the task's folder."""

    text: str = Field(
        min_length=1,
        max_length=25_000,
        description="The post: at most 280 characters as X counts them (a link is 23, emoji "
        "and CJK characters 2).",
    )
    images: list[str] = Field(
        default_factory=list,
        max_length=4,
        description="Up to 4 PNG, JPEG, GIF or WEBP images (5 MB each): paths in the task's "
        "folder.",
    )
    reply_to: str | None = Field(
        default=None, pattern=r"^\d{1,19}$", description="The id of the post this one answers."
    )
    account: str | None = _ACCOUNT

    @model_validator(mode="after")
    def _fits(self) -> Self:
        self._check(PLATFORMS["twitter"], self.text, self.images)
        return self


class InstagramPostArgs(_Post):
    """Publishes a photo (or a carousel of up to 10) with a caption to the person's Instagram
    professional account."""

    caption: str = Field(default="", max_length=10_000, description="At most 2,200 characters, "
                         "30 hashtags and 20 @mentions.")  # fmt: skip
    images: list[str] = Field(
        min_length=1,
        max_length=10,
        description="JPEG images: paths in the task's folder or https addresses; several make "
        "a carousel.",
    )
    account: str | None = _ACCOUNT

    @model_validator(mode="after")
    def _fits(self) -> Self:
        self._check(PLATFORMS["instagram"], self.caption, self.images)
        if len(_HASHTAG.findall(self.caption)) > 30:
            raise ValueError("Instagram allows at most 30 hashtags in a caption")
        if len(_MENTION.findall(self.caption)) > 20:
            raise ValueError("Instagram allows at most 20 @mentions in a caption")
        return self


class LinkedInPostArgs(_Post):
    """Posts to LinkedIn as the person (a member) or as an organisation they administer, with
    an optional image from the task's folder."""

    text: str = Field(min_length=1, max_length=30_000, description="At most 3,000 characters.")
    image: str | None = Field(
        default=None, description="A PNG, JPEG or GIF image: a path in the task's folder."
    )
    image_alt: str = Field(default="", max_length=4086, description="The image's description.")
    organization: str | None = Field(
        default=None,
        pattern=r"^\d{1,20}$",
        description="Post as this organisation (its LinkedIn id) instead of the member.",
    )
    account: str | None = _ACCOUNT

    @model_validator(mode="after")
    def _fits(self) -> Self:
        self._check(PLATFORMS["linkedin"], self.text, [self.image] if self.image else [])
        return self


class FacebookPostArgs(_Post):
    """Posts to a Facebook Page the person manages: a message, optionally a link, or up to 10
    photos (from the task's folder or https addresses)."""

    text: str = Field(default="", max_length=100_000, description="The post's message.")
    link: str | None = Field(
        default=None, max_length=2000, pattern=r"^https?://\S+$", description="A link to share."
    )
    images: list[str] = Field(default_factory=list, max_length=10)
    account: str | None = _ACCOUNT

    @model_validator(mode="after")
    def _fits(self) -> Self:
        self._check(PLATFORMS["facebook"], self.text, self.images)
        if not (self.text.strip() or self.link or self.images):
            raise ValueError("a post needs a text, a link or an image")
        if self.link and self.images:
            raise ValueError("a Facebook post shares either a link or photos, not both")
        return self


# name -> (description, arguments, platform)
SOCIAL_TOOLS: dict[str, tuple[str, type[_Post], str]] = {
    "post_to_twitter": (
        (
            "Post to X (Twitter) from the person's own account: text (280 characters as X counts "
            "them), a reply to a post, up to 4 images. The person checks and may edit the post "
            "and the account before it goes; returns its address."
        ),
        TwitterPostArgs,
        "twitter",
    ),
    "post_to_instagram": (
        (
            "Publish a photo or a carousel with a caption to the person's Instagram professional "
            "account. The person checks and may edit it before it goes; returns its address."
        ),
        InstagramPostArgs,
        "instagram",
    ),
    "post_to_linkedin": (
        (
            "Post to LinkedIn as the person or an organisation they administer, optionally with "
            "an image. The person checks and may edit it before it goes; returns its address."
        ),
        LinkedInPostArgs,
        "linkedin",
    ),
    "post_to_facebook": (
        (
            "Post to a Facebook Page the person manages: a message with a link or photos. The "
            "person checks and may edit it before it goes; returns its address."
        ),
        FacebookPostArgs,
        "facebook",
    ),
}


def platform_of(tool: str) -> Platform | None:
    """The platform a posting tool posts to (``None``: not a posting tool)."""
    entry = SOCIAL_TOOLS.get(tool)
    return PLATFORMS[entry[2]] if entry else None
