"""The loopback X, Instagram, Facebook and LinkedIn: they refuse what the real ones refuse."""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, ClassVar
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from troika_testkit.social import Platforms

if TYPE_CHECKING:
    from collections.abc import Iterator

PNG = b"\x89PNG\r\n\x1a\n" + b"png-pixels"
JPEG = b"\xff\xd8\xff\xe0" + b"jpeg-pixels"
JPEG_2 = b"\xff\xd8\xff\xdb" + b"other-jpeg-pixels"
LINKEDIN_HEADERS = {"LinkedIn-Version": "202511", "X-Restli-Protocol-Version": "2.0.0"}


class _Photos(BaseHTTPRequestHandler):
    files: ClassVar[dict[str, bytes]] = {
        "/photo.jpg": JPEG,
        "/second.jpg": JPEG_2,
        "/page.html": b"<html></html>",
    }

    def log_message(self, *_: object) -> None:
        pass

    def do_GET(self) -> None:
        body = self.files.get(self.path)
        self.send_response(200 if body is not None else 404)
        self.send_header("Content-Length", str(len(body or b"")))
        self.end_headers()
        self.wfile.write(body or b"")


@pytest.fixture
def photos() -> Iterator[str]:
    """A second server, where the platforms fetch images from."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Photos)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _pkce() -> tuple[str, str]:
    verifier = "v" * 50
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def test_x_code_exchange_needs_the_verifier_and_refresh_rotates_both_tokens(
    platforms: Platforms,
) -> None:
    ada = platforms.add_x_user()
    x = platforms.base("x")
    verifier, challenge = _pkce()
    redirect = "http://127.0.0.1:1/callback"
    authorize = httpx.get(
        f"{x}/i/oauth2/authorize",
        params={
            "response_type": "code",
            "client_id": platforms.oauth_client_id,
            "redirect_uri": redirect,
            "scope": "tweet.read tweet.write users.read offline.access",
            "state": "s-1",
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        },
    )
    assert authorize.status_code == 302
    location = urlsplit(authorize.headers["location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == redirect
    answer = {k: v[0] for k, v in parse_qs(location.query).items()}
    assert answer["state"] == "s-1"

    basic = (platforms.oauth_client_id, platforms.oauth_client_secret)
    form = {"grant_type": "authorization_code", "code": answer["code"], "redirect_uri": redirect}
    wrong = httpx.post(f"{x}/2/oauth2/token", data={**form, "code_verifier": "w" * 50}, auth=basic)
    assert wrong.status_code == 400
    assert wrong.json()["error"] == "invalid_grant"

    # the code was spent by the wrong try: a new one, then the right verifier
    location = urlsplit(
        httpx.get(authorize.request.url).headers["location"]  # same parameters
    )
    form["code"] = parse_qs(location.query)["code"][0]
    tokens = httpx.post(f"{x}/2/oauth2/token", data={**form, "code_verifier": verifier}, auth=basic)
    assert tokens.status_code == 200, tokens.text
    first = tokens.json()
    assert first["token_type"] == "bearer"
    assert first["expires_in"] == 7200
    assert "offline.access" in first["scope"]
    again = httpx.post(f"{x}/2/oauth2/token", data={**form, "code_verifier": verifier}, auth=basic)
    assert again.status_code == 400  # a code works once

    me = httpx.get(f"{x}/2/users/me", headers=_bearer(first["access_token"]))
    assert me.json() == {"data": {"id": ada.id, "name": "Ada", "username": "ada_writes"}}

    refreshed = httpx.post(
        f"{x}/2/oauth2/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": first["refresh_token"],
            "client_id": platforms.oauth_client_id,
        },
    )
    assert refreshed.status_code == 200, refreshed.text
    second = refreshed.json()
    assert second["access_token"] != first["access_token"]
    assert second["refresh_token"] != first["refresh_token"]
    assert ada.access_token == second["access_token"]

    old = httpx.get(f"{x}/2/users/me", headers=_bearer(first["access_token"]))
    assert old.status_code == 401
    assert old.json()["title"] == "Unauthorized"
    reused = httpx.post(
        f"{x}/2/oauth2/token",
        data={"grant_type": "refresh_token", "refresh_token": first["refresh_token"]},
        auth=basic,
    )
    assert reused.status_code == 400
    assert httpx.get(f"{x}/2/users/me", headers=_bearer(second["access_token"])).is_success


def test_x_media_then_a_tweet_keeps_the_images_in_the_order_attached(platforms: Platforms) -> None:
    ada = platforms.add_x_user()
    x = platforms.base("x")

    def upload(data: bytes) -> httpx.Response:
        return httpx.post(
            f"{x}/2/media/upload",
            headers=_bearer(ada.access_token),
            files={"media": ("image", data, "application/octet-stream")},
            data={"media_category": "tweet_image"},
        )

    png, jpeg = upload(PNG).json()["data"], upload(JPEG).json()["data"]
    assert png["image"] == {"image_type": "image/png"}
    assert png["media_key"] == f"3_{png['id']}"
    refused = upload(b"%PDF-1.7 not an image")
    assert refused.status_code == 400
    assert refused.json()["type"].endswith("/invalid-request")

    tweet = {"text": "Two pictures", "media": {"media_ids": [jpeg["id"], png["id"]]}}
    made = httpx.post(f"{x}/2/tweets", headers=_bearer(ada.access_token), json=tweet)
    assert made.status_code == 201, made.text
    tweet_id = made.json()["data"]["id"]
    assert made.json()["data"]["edit_history_tweet_ids"] == [tweet_id]
    [post] = platforms.posts
    assert post.media == [JPEG, PNG]
    assert post.url == f"https://x.com/ada_writes/status/{tweet_id}"

    duplicate = httpx.post(f"{x}/2/tweets", headers=_bearer(ada.access_token), json=tweet)
    assert duplicate.status_code == 403
    assert "duplicate content" in duplicate.json()["detail"]

    someone_else = platforms.add_x_user(username="grace")
    foreign = httpx.post(
        f"{x}/2/tweets",
        headers=_bearer(someone_else.access_token),
        json={"text": "Not mine", "media": {"media_ids": [png["id"]]}},
    )
    assert foreign.status_code == 400

    reply = {"text": "Reply", "reply": {"in_reply_to_tweet_id": "42"}}
    assert (
        httpx.post(f"{x}/2/tweets", headers=_bearer(ada.access_token), json=reply).status_code
        == 403
    )
    platforms.x_tweets.add("42")
    answered = httpx.post(f"{x}/2/tweets", headers=_bearer(ada.access_token), json=reply)
    assert answered.status_code == 201
    assert platforms.posts[-1].reply_to == "42"


def test_a_token_anywhere_but_the_header_is_refused(platforms: Platforms) -> None:
    ada_x = platforms.add_x_user()
    ada_ig = platforms.add_instagram_user()
    ada_li = platforms.add_linkedin_member()

    x = httpx.get(f"{platforms.base('x')}/2/users/me", params={"access_token": ada_x.access_token})
    assert x.status_code == 401
    instagram = httpx.get(
        f"{platforms.base('instagram')}/v24.0/me",
        params={"fields": "user_id,username", "access_token": ada_ig.access_token},
    )
    assert instagram.status_code == 400
    assert instagram.json()["error"]["code"] == 190
    linkedin = httpx.get(
        f"{platforms.base('linkedin')}/v2/userinfo",
        params={"oauth2_access_token": ada_li.access_token},
    )
    assert linkedin.status_code == 401

    fine = httpx.get(
        f"{platforms.base('instagram')}/v24.0/me",
        params={"fields": "user_id,username"},
        headers=_bearer(ada_ig.access_token),
    )
    assert fine.json() == {"user_id": ada_ig.id, "username": "ada.pictures", "id": ada_ig.id}

    platforms.expire(ada_ig)
    expired = httpx.get(
        f"{platforms.base('instagram')}/v24.0/me", headers=_bearer(ada_ig.access_token)
    )
    assert expired.json()["error"]["error_subcode"] == 463
    platforms.expire(ada_li)
    li = httpx.get(
        f"{platforms.base('linkedin')}/v2/userinfo", headers=_bearer(ada_li.access_token)
    )
    assert li.status_code == 401
    assert li.json()["code"] == "EXPIRED_ACCESS_TOKEN"


def test_linkedin_needs_its_version_headers_and_an_uploaded_image(platforms: Platforms) -> None:
    ada = platforms.add_linkedin_member()
    li = platforms.base("linkedin")
    auth = _bearer(ada.access_token)
    post = {
        "author": "urn:li:organization:1234567",
        "commentary": "Fresh bread",
        "visibility": "PUBLIC",
        "distribution": {
            "feedDistribution": "MAIN_FEED",
            "targetEntities": [],
            "thirdPartyDistributionChannels": [],
        },
        "lifecycleState": "PUBLISHED",
        "isReshareDisabledByAuthor": False,
    }
    missing = httpx.post(f"{li}/rest/posts", headers=auth, json=post)
    assert missing.status_code == 400
    assert missing.json()["code"] == "VERSION_MISSING"
    assert platforms.posts == []

    headers = {**auth, **LINKEDIN_HEADERS}
    init = httpx.post(
        f"{li}/rest/images",
        params={"action": "initializeUpload"},
        headers=headers,
        json={"initializeUploadRequest": {"owner": "urn:li:organization:1234567"}},
    ).json()["value"]
    with_image = {**post, "content": {"media": {"id": init["image"], "altText": "A loaf"}}}
    early = httpx.post(f"{li}/rest/posts", headers=headers, json=with_image)
    assert early.status_code == 400  # not uploaded yet

    assert httpx.put(init["uploadUrl"], headers=auth, content=PNG).status_code == 201
    made = httpx.post(f"{li}/rest/posts", headers=headers, json=with_image)
    assert made.status_code == 201, made.text
    urn = made.headers["x-restli-id"]
    assert urn.startswith("urn:li:share:")
    [accepted] = platforms.posts
    assert (accepted.author, accepted.media, accepted.text) == (
        "urn:li:organization:1234567",
        [PNG],
        "Fresh bread",
    )
    assert accepted.url == f"https://www.linkedin.com/feed/update/{urn}/"

    foreign = httpx.post(
        f"{li}/rest/posts", headers=headers, json={**post, "author": "urn:li:organization:99"}
    )
    assert foreign.status_code == 403
    assert foreign.json()["code"] == "ACCESS_DENIED"


def test_instagram_publishes_a_container_only_once_it_is_finished(
    platforms: Platforms, photos: str
) -> None:
    ada = platforms.add_instagram_user()
    ig = f"{platforms.base('instagram')}/v24.0"
    auth = _bearer(ada.access_token)

    not_a_photo = httpx.post(
        f"{ig}/{ada.id}/media", headers=auth, data={"image_url": f"{photos}/page.html"}
    )
    assert not_a_photo.status_code == 400
    assert not_a_photo.json()["error"]["code"] == 9004

    container = httpx.post(
        f"{ig}/{ada.id}/media",
        headers=auth,
        data={"image_url": f"{photos}/photo.jpg", "caption": "Morning bake"},
    ).json()["id"]

    def status() -> str:
        answer = httpx.get(f"{ig}/{container}", params={"fields": "status_code"}, headers=auth)
        return str(answer.json()["status_code"])

    def publish() -> httpx.Response:
        return httpx.post(
            f"{ig}/{ada.id}/media_publish", headers=auth, data={"creation_id": container}
        )

    assert status() == "IN_PROGRESS"
    too_early = publish()
    assert too_early.status_code == 400
    assert too_early.json()["error"]["code"] == 9007
    assert status() == "FINISHED"
    published = publish()
    assert published.status_code == 200, published.text
    media_id = published.json()["id"]
    assert status() == "PUBLISHED"

    permalink = httpx.get(f"{ig}/{media_id}", params={"fields": "permalink"}, headers=auth).json()
    [post] = platforms.posts
    assert permalink == {"permalink": post.url, "id": media_id}
    assert (post.text, post.media) == ("Morning bake", [JPEG])


def test_facebook_attaches_unpublished_photos_in_order(platforms: Platforms, photos: str) -> None:
    page = platforms.add_facebook_page()
    fb = f"{platforms.base('facebook')}/v24.0"
    auth = _bearer(page.access_token)
    first = httpx.post(
        f"{fb}/{page.id}/photos",
        headers=auth,
        files={"source": ("a.jpg", JPEG, "image/jpeg")},
        data={"published": "false"},
    ).json()["id"]
    second = httpx.post(
        f"{fb}/{page.id}/photos",
        headers=auth,
        data={"url": f"{photos}/second.jpg", "published": "false"},
    ).json()["id"]
    assert platforms.posts == []

    made = httpx.post(
        f"{fb}/{page.id}/feed",
        headers=auth,
        data={
            "message": "Two loaves",
            "attached_media[0]": json.dumps({"media_fbid": second}),
            "attached_media[1]": json.dumps({"media_fbid": first}),
        },
    )
    assert made.status_code == 200, made.text
    post_id = made.json()["id"]
    [post] = platforms.posts
    assert post.media == [JPEG_2, JPEG]
    link = httpx.get(f"{fb}/{post_id}", params={"fields": "permalink_url"}, headers=auth).json()
    assert link["permalink_url"] == post.url

    other = httpx.post(f"{fb}/123/feed", headers=auth, data={"message": "Not my page"})
    assert other.status_code == 403
    assert other.json()["error"]["code"] == 200


def test_canned_failures_answer_once(platforms: Platforms) -> None:
    ada = platforms.add_x_user()
    me = f"{platforms.base('x')}/2/users/me"
    platforms.rate_limit_next("x", r"^/2/users/me$", reset_in_s=60)
    limited = httpx.get(me, headers=_bearer(ada.access_token))
    assert limited.status_code == 429
    assert limited.headers["x-rate-limit-remaining"] == "0"
    assert int(limited.headers["x-rate-limit-reset"]) >= int(time.time()) + 58
    assert httpx.get(me, headers=_bearer(ada.access_token)).status_code == 200

    page = platforms.add_facebook_page()
    platforms.rate_limit_next("facebook", "/feed", reset_in_s=90)
    answer = httpx.post(
        f"{platforms.base('facebook')}/v24.0/{page.id}/feed",
        headers=_bearer(page.access_token),
        data={"message": "hi"},
    )
    assert answer.json()["error"]["code"] == 32
    usage = json.loads(answer.headers["x-business-use-case-usage"])
    assert usage[page.id][0]["estimated_time_to_regain_access"] == 2

    platforms.fail_next("linkedin", "userinfo", 503, {"message": "down"}, {"Retry-After": "5"})
    down = httpx.get(f"{platforms.base('linkedin')}/v2/userinfo")
    assert (down.status_code, down.json(), down.headers["retry-after"]) == (
        503,
        {"message": "down"},
        "5",
    )
    assert [r.path for r in platforms.requests_to("linkedin")] == ["/v2/userinfo"]
