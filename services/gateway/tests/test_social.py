"""A person's social accounts: connected from a pasted token or the platform's own sign-in
(OAuth 2 with PKCE), listed and removed; tokens stored encrypted, never shown, renewed before
a post when they expire soon, and sent only sealed into the approved post's call."""

from __future__ import annotations

import base64
import hashlib
import time
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import text

from troika_gateway.social.accounts import call_account, media_link
from troika_gateway.social.renewals import Renewals
from troika_shared.messages import ToolCall, ToolExecute
from troika_shared.vault import open_call_secrets

from .conftest import assert_problem
from .test_approvals import answer, pending
from .test_pipeline_rules import Driver
from .test_tasks import create

RETURN = "http://web.example/profile/connected"


@pytest.fixture
def settings(settings, platforms):
    """The gateway pointed at the loopback platforms, with an OAuth app on X and LinkedIn."""
    x, linkedin = platforms.base("x"), platforms.base("linkedin")
    return settings.model_copy(update={
        "twitter_api_url": x,
        "twitter_authorize_url": f"{x}/i/oauth2/authorize",
        "twitter_token_url": f"{x}/2/oauth2/token",
        "twitter_client_id": platforms.oauth_client_id,
        "twitter_client_secret": SecretStr(platforms.oauth_client_secret),
        "instagram_api_url": platforms.base("instagram"),
        "facebook_api_url": platforms.base("facebook"),
        "linkedin_api_url": linkedin,
        "linkedin_authorize_url": f"{linkedin}/oauth/v2/authorization",
        "linkedin_token_url": f"{linkedin}/oauth/v2/accessToken",
        "linkedin_client_id": platforms.oauth_client_id,
        "linkedin_client_secret": SecretStr(platforms.oauth_client_secret),
    })  # fmt: skip


async def paste(client, who, platform: str, token: str, **more) -> httpx.Response:
    body = {"platform": platform, "access_token": token, **more}
    return await client.post("/social/accounts", headers=who.headers, json=body)


async def raw_rows(gateway) -> list:
    async with gateway.app.state.sessionmaker() as db:
        return list((await db.execute(text("SELECT * FROM social_accounts"))).all())


async def test_a_pasted_token_connects_the_account_it_belongs_to(
    gateway, client, alice, platforms
) -> None:
    ada = platforms.add_x_user(username="ada_writes", name="Ada")
    page = platforms.add_facebook_page(name="Ada's Bakery")
    connected = await paste(client, alice, "twitter", ada.access_token, expires_in=7200)
    assert connected.status_code == 201, connected.text
    view = connected.json()
    assert (view["platform"], view["shown"], view["name"]) == ("twitter", "@ada_writes", "Ada")
    assert view["account_id"] == ada.id
    assert view["expires_at"] is not None
    assert view["renewable"] is False  # no refresh token came with it
    assert (await paste(client, alice, "facebook", page.access_token)).status_code == 201

    listed = await client.get("/social/accounts", headers=alice.headers)
    assert [(a["label"], a["shown"]) for a in listed.json()] == [
        ("Facebook", "Ada's Bakery"),
        ("X (Twitter)", "@ada_writes"),
    ]
    # The platform was asked whose token it is, with the token in the header only.
    [me] = [r for r in platforms.requests_to("x") if r.path == "/2/users/me"]
    assert me.headers["authorization"] == f"Bearer {ada.access_token}"
    # Tokens are never shown, and at rest they are encrypted.
    for response in (connected, listed):
        assert ada.access_token not in response.text
    rows = await raw_rows(gateway)
    assert len(rows) == 2
    assert ada.access_token not in repr(rows)
    assert page.access_token not in repr(rows)

    # The same account connected again keeps one row, with the new token.
    again = await paste(client, alice, "twitter", ada.access_token)
    assert again.json()["id"] == view["id"]
    assert len(await raw_rows(gateway)) == 2


async def test_a_token_the_platform_refuses_is_not_stored(gateway, client, alice) -> None:
    refused = await paste(client, alice, "linkedin", "AQV-not-a-real-token")
    problem = assert_problem(refused, 422, "LinkedIn refused the token (401")
    assert problem["errors"][0]["field"] == "access_token"
    for bad in (
        {"platform": "myspace", "access_token": "abcdefgh12"},
        {"platform": "twitter"},
        {"platform": "twitter", "access_token": "has spaces in it"},
        {"platform": "twitter", "access_token": "not-ascii-\U000b7006-token"},
        {"platform": "twitter", "access_token": "abcdefgh12", "expires_in": 0},
        {"platform": "twitter", "access_token": "abcdefgh12", "password": "x"},
    ):
        response = await client.post("/social/accounts", headers=alice.headers, json=bad)
        assert response.status_code in (400, 422), bad
    assert await raw_rows(gateway) == []
    assert_problem(await client.get("/social/accounts"), 401)


async def test_accounts_are_the_persons_own_and_removing_one_forgets_it(
    gateway, client, alice, bob, platforms
) -> None:
    member = platforms.add_linkedin_member()
    account = (await paste(client, alice, "linkedin", member.access_token)).json()
    assert (await client.get("/social/accounts", headers=bob.headers)).json() == []
    gone = await client.delete(f"/social/accounts/{account['id']}", headers=bob.headers)
    assert_problem(gone, 404)
    assert len(await raw_rows(gateway)) == 1
    removed = await client.delete(f"/social/accounts/{account['id']}", headers=alice.headers)
    assert removed.status_code == 204
    assert (await client.get("/social/accounts", headers=alice.headers)).json() == []
    assert await raw_rows(gateway) == []
    assert_problem(
        await client.delete(f"/social/accounts/{account['id']}", headers=alice.headers), 404
    )


async def sign_in_with(client, who, platform: str) -> httpx.Response:
    """The platform's sign-in as a browser goes through it: to the platform, back with a code."""
    started = await client.post("/social/oauth", headers=who.headers,
                                json={"platform": platform, "redirect_uri": RETURN})  # fmt: skip
    assert started.status_code == 200, started.text
    async with httpx.AsyncClient() as browser:
        consent = await browser.get(started.json()["authorize_url"])
    assert consent.status_code == 302, consent.text
    back = urlsplit(consent.headers["location"])
    assert back.geturl().startswith(RETURN)
    query = {k: v[0] for k, v in parse_qs(back.query).items()}
    assert query["state"] == started.json()["state"]
    return await client.post("/social/oauth/complete", headers=who.headers,
                             json={"state": query["state"], "code": query["code"]})  # fmt: skip


@pytest.mark.parametrize("platform", ["twitter", "linkedin"])
async def test_the_platforms_sign_in_connects_with_pkce(
    client, alice, bob, platforms, platform
) -> None:
    key = {"twitter": "x", "linkedin": "linkedin"}[platform]
    user = platforms.add_x_user() if key == "x" else platforms.add_linkedin_member()
    started = await client.post("/social/oauth", headers=alice.headers,
                                json={"platform": platform, "redirect_uri": RETURN})  # fmt: skip
    asked = parse_qs(urlsplit(started.json()["authorize_url"]).query)
    assert asked["code_challenge_method"] == ["S256"]
    assert asked["redirect_uri"] == [RETURN]

    done = await sign_in_with(client, alice, platform)
    assert done.status_code == 201, done.text
    assert done.json()["account_id"] == user.id
    assert done.json()["renewable"] is True
    [exchange] = [r for r in platforms.requests_to(key) if r.method == "POST"
                  and r.form().get("grant_type") == "authorization_code"]  # fmt: skip
    form = exchange.form()
    digest = hashlib.sha256(form["code_verifier"].encode()).digest()
    challenge = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    assert challenge in {c for r in platforms.requests_to(key)
                         for c in r.query.get("code_challenge", [])}  # fmt: skip
    if platform == "linkedin":  # LinkedIn takes the app's secret in the form, X with Basic
        assert form["client_secret"] == platforms.oauth_client_secret
    else:
        assert "client_secret" not in form
        assert exchange.headers["authorization"].startswith("Basic ")
    assert user.access_token not in done.text

    # Someone else cannot finish another person's sign-in, nor is a sign-in finished twice.
    again = await client.post("/social/oauth", headers=alice.headers,
                              json={"platform": platform, "redirect_uri": RETURN})  # fmt: skip
    state = again.json()["state"]
    stolen = await client.post("/social/oauth/complete", headers=bob.headers,
                               json={"state": state, "code": "whatever"})  # fmt: skip
    assert_problem(stolen, 422, "start connecting the account again")
    forged = await client.post("/social/oauth/complete", headers=alice.headers,
                               json={"state": state[:-4] + "AAAA", "code": "x"})  # fmt: skip
    assert_problem(forged, 422)
    assert (await client.get("/social/accounts", headers=bob.headers)).json() == []


async def test_platforms_without_a_sign_in_take_a_pasted_token(client, alice) -> None:
    listed = (await client.get("/social/platforms", headers=alice.headers)).json()
    assert {p["platform"]: p["sign_in"] for p in listed} == {
        "twitter": True,
        "instagram": False,
        "linkedin": True,
        "facebook": False,
    }
    refused = await client.post("/social/oauth", headers=alice.headers,
                                json={"platform": "instagram", "redirect_uri": RETURN})  # fmt: skip
    assert_problem(refused, 409, "paste a token instead")


def post_call(tool: str = "post_to_twitter", **arguments) -> ToolCall:
    arguments = arguments or {"text": "Launch day!"}
    return ToolCall(key=f"post-{tool}-{len(arguments)}", tool=tool, arguments=arguments)


@pytest.fixture
async def d(gateway, client, alice) -> Driver:
    task = await create(client, alice, "Announce the launch on X")
    driver = Driver(gateway, client, alice, task["id"])
    await driver.plan()
    return driver


async def test_a_post_is_approved_on_a_form_and_goes_sealed_with_its_account(d, platforms) -> None:
    await d.propose(post_call())
    [form] = await pending(d)
    assert form["kind"] == "input"
    fields = form["prompt"]["form"]["properties"]
    assert set(fields) == {"text", "images", "reply_to", "account"}
    assert fields["text"]["default"] == "Launch day!"
    values = {"text": "Launch day! 🚀", "account": ""}
    refused = await answer(d, form["id"], decision="approve", values=values)
    assert_problem(refused, 409, "no X (Twitter) account is connected")
    assert await d.commands(ToolExecute) == []

    ada = platforms.add_x_user(username="ada_writes")
    other = platforms.add_x_user(username="ada_at_work")
    await paste(d.client, d.account, "twitter", ada.access_token)
    await paste(d.client, d.account, "twitter", other.access_token)
    several = await answer(d, form["id"], decision="approve", values=values)
    assert_problem(
        several, 422, "choose which X (Twitter) account posts: @ada_writes, @ada_at_work"
    )
    wrong = await answer(d, form["id"], decision="approve", values=values | {"account": "@bob"})
    assert_problem(wrong, 422, "'@bob' is not one of your X (Twitter) accounts")

    chosen = await answer(d, form["id"], decision="approve",
                          values=values | {"account": "@ada_at_work"})  # fmt: skip
    assert chosen.status_code == 200, chosen.text
    [execute] = await d.commands(ToolExecute)
    assert execute.call.arguments["text"] == "Launch day! 🚀"  # the person's edit
    key = d.gateway.settings.call_secrets_key()
    sealed = open_call_secrets(key, d.task_id, execute.call.key, execute.secrets)
    assert sealed["twitter"] == {
        "api_url": platforms.base("x"), "api_version": "2",
        "access_token": other.access_token, "account_id": other.id,
        "name": other.name, "username": "ada_at_work",
    }  # fmt: skip
    events = await d.client.get(f"/tasks/{d.task_id}/events", headers=d.account.headers)
    assert other.access_token not in events.text
    async with d.gateway.app.state.sessionmaker() as db:
        outbox = (await db.execute(text("SELECT * FROM outbox"))).all()
    assert other.access_token not in repr(outbox)


async def test_a_token_about_to_expire_is_renewed_before_the_post(d, platforms) -> None:
    ada = platforms.add_x_user(expires_in=60)  # inside the gateway's five-minute margin
    assert (await sign_in_with(d.client, d.account, "twitter")).status_code == 201
    first_token = ada.access_token
    await d.propose(post_call())
    [form] = await pending(d)
    approved = await answer(d, form["id"], decision="approve", values={"text": "Hi"})
    assert approved.status_code == 200, approved.text

    tokens = [r for r in platforms.requests_to("x") if r.path == "/2/oauth2/token"]
    refreshes = [r for r in tokens if r.form().get("grant_type") == "refresh_token"]
    assert len(refreshes) == 1
    assert ada.access_token != first_token  # the platform rotated it
    [execute] = await d.commands(ToolExecute)
    key = d.gateway.settings.call_secrets_key()
    sealed = open_call_secrets(key, d.task_id, execute.call.key, execute.secrets)
    assert sealed["twitter"]["access_token"] == ada.access_token
    view = (await d.client.get("/social/accounts", headers=d.account.headers)).json()[0]
    assert view["problem"] == ""


async def test_a_refused_renewal_asks_the_person_to_connect_again(d, platforms) -> None:
    ada = platforms.add_x_user(expires_in=60)
    assert (await sign_in_with(d.client, d.account, "twitter")).status_code == 201
    platforms.fail_next("x", r"^/2/oauth2/token$", 400,
                        {"error": "invalid_grant", "error_description": "Value passed for the "
                         "token was invalid."})  # fmt: skip
    await d.propose(post_call())
    [form] = await pending(d)
    refused = await answer(d, form["id"], decision="approve", values={"text": "Hi"})
    assert_problem(refused, 409, "must be connected again")
    assert await d.commands(ToolExecute) == []
    [view] = (await d.client.get("/social/accounts", headers=d.account.headers)).json()
    assert "connect the account again" in view["problem"]
    assert ada.access_token not in view["problem"]


async def test_instagram_fetches_a_file_of_the_task_by_a_signed_link(
    gateway, client, alice, platforms, tmp_path
) -> None:
    task = await create(client, alice, "Post the photo")
    folder = gateway.settings.data_dir / "workspaces" / task["id"]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "photo.jpg").write_bytes(b"\xff\xd8\xff\xe0 a photo")
    linked = gateway.settings.model_copy(update={"public_url": gateway.url})
    link = media_link(linked, task["id"], "photo.jpg")
    async with httpx.AsyncClient() as anyone:  # no sign-in: the platform fetches it
        fetched = await anyone.get(link)
        assert fetched.status_code == 200
        assert fetched.content == b"\xff\xd8\xff\xe0 a photo"
        assert fetched.headers["content-type"] == "image/jpeg"
        assert (await anyone.get(link[:-6] + "AAAAAA")).status_code == 404
        other = media_link(linked, task["id"], "../../secret.txt")
        assert (await anyone.get(other)).status_code == 404


async def test_an_expired_link_no_longer_opens(gateway, monkeypatch) -> None:
    linked = gateway.settings.model_copy(update={"public_url": gateway.url})
    link = media_link(linked, "task", "photo.jpg")
    later = time.time() + 3601
    monkeypatch.setattr(time, "time", lambda: later)
    async with httpx.AsyncClient() as anyone:
        assert (await anyone.get(link)).status_code == 404


async def test_the_worker_renews_long_lived_tokens_before_they_lapse(
    gateway, client, alice, platforms
) -> None:
    pictures = platforms.add_instagram_user()
    ada = platforms.add_x_user(expires_in=7200)
    member = platforms.add_linkedin_member()
    for platform, user, lasts in (("instagram", pictures, 3 * 86400), ("twitter", ada, 7200),
                                  ("linkedin", member, 30 * 86400)):  # fmt: skip
        pasted = await paste(client, alice, platform, user.access_token, expires_in=lasts)
        assert pasted.status_code == 201, pasted.text

    async def accounts() -> dict[str, dict]:
        listed = await client.get("/social/accounts", headers=alice.headers)
        return {account["platform"]: account for account in listed.json()}

    before = await accounts()
    old_token = pictures.access_token

    renewals = Renewals(gateway.app.state.sessionmaker, gateway.settings)
    renewed = await renewals.sweep()

    # Instagram's expires within the week: renewed with its own endpoint, the new token kept.
    # X's lasts two hours (renewed when a post needs it); LinkedIn's has a month to go.
    assert renewed == [before["instagram"]["id"]]
    [asked] = [r for r in platforms.requests_to("instagram") if r.path == "/refresh_access_token"]
    assert asked.headers["authorization"] == f"Bearer {old_token}"
    assert asked.query == {"grant_type": ["ig_refresh_token"]}
    assert pictures.access_token != old_token
    after = await accounts()
    assert after["instagram"]["expires_at"] > before["instagram"]["expires_at"]
    assert after["twitter"]["expires_at"] == before["twitter"]["expires_at"]
    me = (await client.get("/auth/me", headers=alice.headers)).json()["id"]
    async with gateway.app.state.sessionmaker() as db:
        account = await call_account(db, gateway.settings, me, "instagram",
                                     arguments={}, task_id="t")  # fmt: skip
    assert account is not None
    assert account["access_token"] == pictures.access_token

    # A renewal the platform refuses marks the account; the next sweep leaves it alone.
    platforms.fail_next(
        "instagram",
        r"^/refresh_access_token$",
        400,
        {
            "error": {
                "message": "Error validating access token",
                "type": "OAuthException",
                "code": 190,
            }
        },
    )
    await client.delete(f"/social/accounts/{after['instagram']['id']}", headers=alice.headers)
    other = platforms.add_instagram_user(username="ada.second")
    await paste(client, alice, "instagram", other.access_token, expires_in=2 * 86400)
    assert await renewals.sweep() == []
    marked = (await accounts())["instagram"]
    assert "Instagram refused to renew the token" in marked["problem"]
    assert await renewals.sweep() == []
    assert len([r for r in platforms.requests_to("instagram")
                if r.path == "/refresh_access_token"]) == 2  # fmt: skip
