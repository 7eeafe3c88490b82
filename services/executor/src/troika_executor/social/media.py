"""Images for a post: read from the task's folder and checked against the platform's rules
(type by content, not by name; size), or passed on by address for the platforms that fetch
images themselves."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from troika_executor.social.refusals import PostProblem
from troika_executor.workspace import OutsideWorkspace
from troika_shared.social import Platform, is_address, platform_of

if TYPE_CHECKING:
    from troika_executor.workspace import Workspace

__all__ = ["Image", "load_image", "media_problems"]

_SIGNATURES = (
    (b"\xff\xd8\xff", "image/jpeg", "jpeg"),
    (b"\x89PNG\r\n\x1a\n", "image/png", "png"),
    (b"GIF87a", "image/gif", "gif"),
    (b"GIF89a", "image/gif", "gif"),
    (b"BM", "image/bmp", "bmp"),
    (b"II*\x00", "image/tiff", "tiff"),
    (b"MM\x00*", "image/tiff", "tiff"),
)


@dataclass(frozen=True, slots=True)
class Image:
    """An image from the task's folder: its name, bytes and media type."""

    name: str
    data: bytes
    content_type: str


def _kind(head: bytes) -> tuple[str, str] | None:
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp", "webp"
    for signature, content_type, kind in _SIGNATURES:
        if head.startswith(signature):
            return content_type, kind
    return None


def _check(workspace: Workspace, name: str, platform: Platform) -> tuple[int, str]:
    """The image's size and media type.

    Raises:
        PostProblem: It is missing, too large or not an image the platform takes.
    """
    try:
        path = workspace.path(name)
    except OutsideWorkspace as exc:
        raise PostProblem(f"{name!r}: {exc}") from None
    if not path.is_file():
        raise PostProblem(f"there is no file {name!r} in the task's folder")
    size = path.stat().st_size
    if size > platform.max_image_bytes:
        limit = platform.max_image_bytes // (1024 * 1024)
        raise PostProblem(f"{name!r} is {size / 1048576:.1f} MB; {platform.label} takes images "
                          f"up to {limit} MB")  # fmt: skip
    with path.open("rb") as handle:
        found = _kind(handle.read(16))
    accepted = {"jpeg" if kind == "jpg" else kind for kind in platform.image_types}
    if found is None or found[1] not in accepted:
        kinds = ", ".join(sorted(kind.upper() for kind in accepted))
        raise PostProblem(f"{name!r} is not a {kinds} image, which is what {platform.label} takes")
    return size, found[0]


def load_image(workspace: Workspace, name: str, platform: Platform) -> Image:
    """An image from the task's folder, checked (runs in a thread: it reads the file).

    Raises:
        PostProblem: It is missing, too large or not an image the platform takes.
    """
    _, content_type = _check(workspace, name, platform)
    data = workspace.path(name).read_bytes()
    return Image(name=name.rsplit("/", 1)[-1], data=data, content_type=content_type)


def _images(arguments: dict[str, Any]) -> list[str]:
    images = arguments.get("images")
    if isinstance(images, list):
        return [str(image) for image in images]
    image = arguments.get("image")
    return [str(image)] if image else []


def media_problems(workspace: Workspace, tool: str, arguments: dict[str, Any]) -> list[str]:
    """What is wrong with a proposed post's images from the task's folder (checked before the
    person is asked, so the agent fixes it first); nothing for other tools."""
    platform = platform_of(tool)
    if platform is None:
        return []
    problems = []
    for name in _images(arguments):
        if is_address(name):
            continue
        try:
            _check(workspace, name, platform)
        except PostProblem as exc:
            problems.append(f"{tool}: {exc}")
    return problems
