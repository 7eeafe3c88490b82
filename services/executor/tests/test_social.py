"""The posting tools against loopback stand-ins for X, Instagram, Facebook and LinkedIn: the
exact requests each platform receives (headers, bodies, media order), its refusals and rate
limits told to the agent with when to retry, and a post that never goes out twice."""

from __future__ import annotations

import struct
import threading
import time
import zlib
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING

import pytest

from troika_executor.handlers import execute
from troika_executor.ledger import CallLedger
from troika_executor.social import media_problems
from troika_executor.tools import Toolbox, run_tool
from troika_executor.workspace import Workspace
from troika_shared.approvals import approval_key, call_key, sign_approval
from troika_shared.messages import ToolCall, ToolExecute
from troika_shared.vault import call_secrets_key, seal_call_secrets
from troika_testkit.ports import free_port

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from troika_testkit.social import Account, Platforms

TASK = "task-social"
SECRET = "a test deployment's secret key, long enough"


def png(seed: int) -> bytes:
    """A real one-pixel PNG, different for each seed."""
    raw = b"\x00" + bytes([seed % 256, 0, 0])
    chunk = lambda kind, data: (  # noqa: E731
        struct.pack(">I", len(data)) + kind + data
        + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    )  # fmt: skip
    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw))
        + (chunk(b"IEND", b""))
    )


def jpeg(seed: int) -> bytes:
    return b"\xff\xd8\xff\xe0" + bytes([seed]) * 64 + b"\xff\xd9"


@pytest.fixture
def box(tmp_path: Path) -> Toolbox:
    Workspace(tmp_path, TASK).root.mkdir(parents=True)
    return Toolbox(data_dir=tmp_path)


def put(box: Toolbox, name: str, data: bytes) -> None:
    (Workspace(box.data_dir, TASK).root / name).write_bytes(data)


@pytest.fixture
def images_site(tmp_path: Path) -> Iterator[str]:
    """A loopback web server with images, for the platforms that fetch images by address."""
    folder = tmp_path / "site"
    folder.mkdir()
    for n in range(3):
        (folder / f"photo{n}.jpg").write_bytes(jpeg(n))
    server = ThreadingHTTPServer(
        ("127.0.0.1", 0), partial(SimpleHTTPRequestHandler, directory=str(folder))
    )
    server.RequestHandlerClass.log_message = lambda *_: None  # type: ignore[method-assign]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def account(platforms: Platforms, user: Account, key: str, version: str = "") -> dict:
    """The account as the gateway seals it into an approved post."""
    defaults = {"x": "2", "instagram": "v24.0", "facebook": "v24.0", "linkedin": "202511"}
    return {
        "api_url": platforms.base(key),
        "api_version": version or defaults[key],
        "access_token": user.access_token,
        "account_id": user.id,
        "name": user.name,
        "username": user.username or "",
    }


def only_in_headers(platforms: Platforms, platform: str, token: str) -> None:
    for request in platforms.requests_to(platform):
        assert request.headers.get("authorization") == f"Bearer {token}", request.path
        assert token not in str(request.query)
        assert token.encode() not in request.body


async def test_x_images_are_uploaded_in_order_then_the_post_names_them(
    box: Toolbox, platforms: Platforms
) -> None:
    ada = platforms.add_x_user()
    platforms.x_tweets.add("1790000000000000001")
    put(box, "chart.png", png(1))
    put(box, "photo.jpg", jpeg(2))
    arguments = {
        "text": "Our results are in 📈 https://example.com/report",
        "images": ["chart.png", "photo.jpg"],
        "reply_to": "1790000000000000001",
    }

    outcome = await run_tool(box, TASK, "post_to_twitter", arguments,
                             {"twitter": account(platforms, ada, "x")})  # fmt: skip

    assert outcome.ok, outcome.error
    sent = platforms.requests_to("x")
    assert [(r.method, r.path) for r in sent] == [
        ("POST", "/2/media/upload"), ("POST", "/2/media/upload"), ("POST", "/2/tweets"),
    ]  # fmt: skip
    uploads = [{part.name: part for part in request.parts()} for request in sent[:2]]
    assert [u["media"].data for u in uploads] == [png(1), jpeg(2)]
    assert [u["media_category"].data for u in uploads] == [b"tweet_image", b"tweet_image"]
    body = sent[2].json()
    assert body["text"] == arguments["text"]
    assert body["reply"] == {"in_reply_to_tweet_id": "1790000000000000001"}
    assert len(body["media"]["media_ids"]) == 2
    [post] = platforms.posts
    assert post.media == [png(1), jpeg(2)]  # attached in the post's order
    assert post.reply_to == "1790000000000000001"
    assert outcome.output == f"Posted to X (Twitter) as @ada_writes: {post.url} (id {post.id})"
    only_in_headers(platforms, "x", ada.access_token)


async def test_x_rate_limit_says_when_to_try_again_and_nothing_is_posted(
    box: Toolbox, platforms: Platforms
) -> None:
    ada = platforms.add_x_user()
    platforms.rate_limit_next("x", r"^/2/tweets$", reset_in_s=90)
    outcome = await run_tool(box, TASK, "post_to_twitter", {"text": "Hello"},
                             {"twitter": account(platforms, ada, "x")})  # fmt: skip
    assert not outcome.ok
    assert "X is limiting requests (429" in outcome.error
    assert "nothing was posted" in outcome.error
    reset = time.strftime("%Y-%m-%d %H:%M", time.gmtime(time.time() + 90))
    assert f"Try again after {reset}" in outcome.error
    waited = int(outcome.error.rsplit("(in ", 1)[1].split(" s)")[0])
    assert 80 <= waited <= 91
    assert platforms.posts == []


async def test_x_refusals_are_told_plainly(box: Toolbox, platforms: Platforms) -> None:
    ada = platforms.add_x_user()
    credentials = {"twitter": account(platforms, ada, "x")}
    first = await run_tool(box, TASK, "post_to_twitter", {"text": "Same words"}, credentials)
    again = await run_tool(box, TASK, "post_to_twitter", {"text": "Same words"}, credentials)
    assert first.ok
    assert again.error == (
        "X refused the post (403): You are not allowed to create a Tweet with duplicate content."
    )
    platforms.expire(ada)
    expired = await run_tool(box, TASK, "post_to_twitter", {"text": "New words"}, credentials)
    assert "X refused the account's access (401" in expired.error
    assert "connect the account again" in expired.error
    assert ada.access_token not in expired.error
    assert len(platforms.posts) == 1


async def test_without_a_connected_account_nothing_is_posted(box: Toolbox) -> None:
    outcome = await run_tool(box, TASK, "post_to_linkedin", {"text": "Hello"}, {})
    assert outcome.error.startswith("no LinkedIn account came with this call")


async def test_instagram_carousel_is_published_once_its_container_is_ready(
    box: Toolbox, platforms: Platforms, images_site: str
) -> None:
    pictures = platforms.add_instagram_user()
    put(box, "local.jpg", jpeg(7))
    creds = account(platforms, pictures, "instagram")
    creds["media_links"] = {"local.jpg": f"{images_site}/photo2.jpg"}  # as the gateway signs
    arguments = {"caption": "Fresh bread #bakery", "images": [
        f"{images_site}/photo0.jpg", "local.jpg", f"{images_site}/photo1.jpg"]}  # fmt: skip

    outcome = await run_tool(box, TASK, "post_to_instagram", arguments, {"instagram": creds})

    assert outcome.ok, outcome.error
    sent = platforms.requests_to("instagram")
    user = pictures.id
    steps = [(r.method, r.path) for r in sent]
    assert steps[:4] == [("POST", f"/v24.0/{user}/media")] * 4  # three items, the carousel
    assert [r.form().get("image_url") for r in sent[:3]] == [
        f"{images_site}/photo0.jpg",
        f"{images_site}/photo2.jpg",
        f"{images_site}/photo1.jpg",
    ]
    assert all(r.form()["is_carousel_item"] == "true" for r in sent[:3])
    carousel = sent[3].form()
    assert carousel["media_type"] == "CAROUSEL"
    assert carousel["caption"] == "Fresh bread #bakery"
    polls = [r for r in sent if r.method == "GET" and r.query.get("fields") == ["status_code"]]
    assert len(polls) >= 2  # IN_PROGRESS first: it waited
    assert steps[-2] == ("POST", f"/v24.0/{user}/media_publish")
    [post] = platforms.posts
    assert post.media == [jpeg(0), jpeg(2), jpeg(1)]
    assert outcome.output == f"Posted to Instagram as @ada.pictures: {post.url} (id {post.id})"
    only_in_headers(platforms, "instagram", pictures.access_token)


async def test_instagram_needs_a_public_link_for_a_file_of_the_task(
    box: Toolbox, platforms: Platforms
) -> None:
    pictures = platforms.add_instagram_user()
    put(box, "local.jpg", jpeg(7))
    outcome = await run_tool(box, TASK, "post_to_instagram", {"images": ["local.jpg"]},
                             {"instagram": account(platforms, pictures, "instagram")})  # fmt: skip
    assert "TROIKA_PUBLIC_URL" in outcome.error
    assert platforms.requests_to("instagram") == []


async def test_meta_rate_limits_say_when_access_returns(
    box: Toolbox, platforms: Platforms, images_site: str
) -> None:
    pictures = platforms.add_instagram_user()
    platforms.rate_limit_next("instagram", r"/media$", reset_in_s=600)
    outcome = await run_tool(box, TASK, "post_to_instagram",
                             {"images": [f"{images_site}/photo0.jpg"]},
                             {"instagram": account(platforms, pictures, "instagram")})  # fmt: skip
    assert "Instagram is limiting requests (400" in outcome.error
    waited = int(outcome.error.rsplit("(in ", 1)[1].split(" s)")[0])
    assert 590 <= waited <= 600
    assert platforms.posts == []


async def test_facebook_photos_go_up_unpublished_then_one_post_attaches_them(
    box: Toolbox, platforms: Platforms, images_site: str
) -> None:
    page = platforms.add_facebook_page()
    put(box, "cake.png", png(3))
    arguments = {"text": "Two new cakes", "images": ["cake.png", f"{images_site}/photo1.jpg"]}
    outcome = await run_tool(box, TASK, "post_to_facebook", arguments,
                             {"facebook": account(platforms, page, "facebook")})  # fmt: skip

    assert outcome.ok, outcome.error
    sent = platforms.requests_to("facebook")
    assert [(r.method, r.path) for r in sent[:3]] == [
        ("POST", f"/v24.0/{page.id}/photos"), ("POST", f"/v24.0/{page.id}/photos"),
        ("POST", f"/v24.0/{page.id}/feed"),
    ]  # fmt: skip
    upload = {part.name: part for part in sent[0].parts()}
    assert upload["source"].data == png(3)
    assert upload["published"].data == b"false"
    assert sent[1].form() == {"url": f"{images_site}/photo1.jpg", "published": "false"}
    feed = sent[2].form()
    assert feed["message"] == "Two new cakes"
    assert '"media_fbid"' in feed["attached_media[0]"]
    assert '"media_fbid"' in feed["attached_media[1]"]
    [post] = platforms.posts
    assert post.media == [png(3), jpeg(1)]
    assert outcome.output == f"Posted to Facebook as Ada's Bakery: {post.url} (id {post.id})"
    only_in_headers(platforms, "facebook", page.access_token)


async def test_linkedin_posts_as_an_organisation_with_an_uploaded_image(
    box: Toolbox, platforms: Platforms
) -> None:
    member = platforms.add_linkedin_member(organizations=("1234567",))
    put(box, "team.png", png(9))
    arguments = {"text": "We are hiring", "image": "team.png", "image_alt": "The team",
                 "organization": "1234567"}  # fmt: skip
    outcome = await run_tool(box, TASK, "post_to_linkedin", arguments,
                             {"linkedin": account(platforms, member, "linkedin")})  # fmt: skip

    assert outcome.ok, outcome.error
    sent = platforms.requests_to("linkedin")
    assert [(r.method, r.path) for r in sent] == [
        ("POST", "/rest/images"),
        ("PUT", sent[1].path),
        ("POST", "/rest/posts"),
    ]
    assert sent[0].query == {"action": ["initializeUpload"]}
    assert sent[0].json() == {"initializeUploadRequest": {"owner": "urn:li:organization:1234567"}}
    assert sent[1].body == png(9)
    for request in (sent[0], sent[2]):
        assert request.headers["linkedin-version"] == "202511"
        assert request.headers["x-restli-protocol-version"] == "2.0.0"
    posted = sent[2].json()
    assert posted["author"] == "urn:li:organization:1234567"
    assert posted["commentary"] == "We are hiring"
    assert posted["content"]["media"]["altText"] == "The team"
    assert posted["lifecycleState"] == "PUBLISHED"
    [post] = platforms.posts
    assert post.media == [png(9)]
    assert outcome.output == f"Posted to LinkedIn as Ada Lovelace: {post.url} (id {post.id})"
    only_in_headers(platforms, "linkedin", member.access_token)

    # Not an administrator of that organisation: LinkedIn's refusal, word for word.
    other = await run_tool(box, TASK, "post_to_linkedin",
                           {"text": "Hi", "organization": "7654321"},
                           {"linkedin": account(platforms, member, "linkedin")})  # fmt: skip
    assert other.error.startswith("LinkedIn refused the post (403): Not enough permissions")


async def test_linkedin_throttling_gives_its_retry_after(
    box: Toolbox, platforms: Platforms
) -> None:
    member = platforms.add_linkedin_member()
    platforms.rate_limit_next("linkedin", r"^/rest/posts$", reset_in_s=120)
    outcome = await run_tool(box, TASK, "post_to_linkedin", {"text": "Hello"},
                             {"linkedin": account(platforms, member, "linkedin")})  # fmt: skip
    assert "LinkedIn is limiting requests (429" in outcome.error
    waited = int(outcome.error.rsplit("(in ", 1)[1].split(" s)")[0])
    assert 110 <= waited <= 120


def test_images_are_checked_before_the_person_is_asked(box: Toolbox) -> None:
    workspace = Workspace(box.data_dir, TASK)
    put(box, "fake.png", b"not an image at all")
    put(box, "big.png", png(1) + b"\x00" * (5 * 1024 * 1024))
    assert media_problems(workspace, "post_to_twitter", {"images": ["missing.png"]}) == [
        "post_to_twitter: there is no file 'missing.png' in the task's folder"
    ]
    [fake] = media_problems(workspace, "post_to_twitter", {"images": ["fake.png"]})
    assert "'fake.png' is not a" in fake
    [big] = media_problems(workspace, "post_to_twitter", {"images": ["big.png"]})
    assert "X (Twitter) takes images up to 5 MB" in big
    assert media_problems(workspace, "create_file", {"images": ["missing.png"]}) == []


def approved(arguments: dict, credentials: dict) -> ToolExecute:
    call = ToolCall(key=call_key(TASK, "post", "post_to_twitter", arguments),
                    tool="post_to_twitter", arguments=arguments)  # fmt: skip
    secrets = seal_call_secrets(call_secrets_key(SECRET), TASK, call.key, credentials)
    return ToolExecute(correlation_id=TASK, user_id="u", subtask_id="post", call=call,
                       approval=sign_approval(approval_key(SECRET), TASK, call),
                       secrets=secrets)  # fmt: skip


async def test_a_post_goes_out_once_even_when_its_call_comes_again(
    box: Toolbox, platforms: Platforms
) -> None:
    ada = platforms.add_x_user()
    credentials = {"twitter": account(platforms, ada, "x")}
    run = partial(execute, toolbox=box, seal_key=approval_key(SECRET),
                  secrets_key=call_secrets_key(SECRET))  # fmt: skip

    request = approved({"text": "Launch day"}, credentials)
    first = await run(request)
    again = await run(request)  # redelivered after the outcome was kept
    assert first.outcome.ok
    assert again.outcome == first.outcome
    assert len(platforms.posts) == 1

    # The executor stopped while posting: the call was started, its outcome never kept.
    interrupted = approved({"text": "Second post"}, credentials)
    await CallLedger(Workspace(box.data_dir, TASK)).begin(interrupted.call.key)
    redelivered = await run(interrupted)
    assert not redelivered.outcome.ok
    assert "not run again" in redelivered.outcome.error
    assert len(platforms.posts) == 1


async def test_a_platform_that_does_not_answer_may_have_taken_the_post(
    box: Toolbox, platforms: Platforms
) -> None:
    ada = platforms.add_x_user()
    gone = account(platforms, ada, "x") | {"api_url": f"http://127.0.0.1:{free_port()}"}
    outcome = await run_tool(box, TASK, "post_to_twitter", {"text": "Hello"}, {"twitter": gone})
    assert outcome.error == (
        "X (Twitter) could not be reached or did not answer (ConnectionError); the post may or "
        "may not have gone out: check the account before posting again"
    )
