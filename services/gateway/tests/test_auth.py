"""Accounts and sessions, as a client sees them."""

from __future__ import annotations

import asyncio
import secrets
from datetime import UTC, datetime, timedelta

import httpx
import jwt
import pytest
from sqlalchemy import func, select, update

from troika_gateway.auth.tokens import TokenIssuer
from troika_gateway.db.models import RetiredRefreshToken, Session, User, UserPhoto

from .conftest import STRONG_PASSWORD, assert_problem, sign_up

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


async def count(gateway, model) -> int:
    async with gateway.app.state.sessionmaker() as db:
        return await db.scalar(select(func.count()).select_from(model))


async def test_register_sign_in_and_see_my_profile(client: httpx.AsyncClient) -> None:
    created = await client.post(
        "/auth/register",
        json={
            "email": "Ada@Example.com",
            "username": "ada",
            "password": STRONG_PASSWORD,
            "display_name": "Ada Lovelace",
        },
    )
    assert created.status_code == 201
    profile = created.json()
    assert (profile["email"], profile["username"], profile["display_name"]) == (
        "ada@example.com",
        "ada",
        "Ada Lovelace",
    )
    assert "password" not in created.text
    assert "password_hash" not in created.text

    for login in ("ada", "ADA@example.com"):
        signed_in = await client.post(
            "/auth/login", json={"login": login, "password": STRONG_PASSWORD}
        )
        assert signed_in.status_code == 200
        tokens = signed_in.json()
        assert tokens["token_type"] == "bearer"
        assert tokens["expires_in"] == 15 * 60
        me = await client.get(
            "/auth/me", headers={"Authorization": f"Bearer {tokens['access_token']}"}
        )
        assert me.status_code == 200
        assert me.json()["id"] == profile["id"]


async def test_passwords_are_stored_as_argon2id_hashes(client, gateway) -> None:
    await sign_up(client, "hashcheck")
    async with gateway.app.state.sessionmaker() as db:
        stored = await db.scalar(select(User.password_hash).where(User.username == "hashcheck"))
    assert stored.startswith("$argon2id$")
    assert STRONG_PASSWORD not in stored


@pytest.mark.parametrize(
    ("password", "reason"),
    [
        ("short1!", "at least 10 characters"),
        ("password123", "too common"),
        ("aaaaaaaaaaaaaa", "more different characters"),
        ("my-name-is-grace-x", "do not include your username"),
    ],
)
async def test_weak_passwords_are_refused_with_the_reason(
    client, gateway, password, reason
) -> None:
    response = await client.post(
        "/auth/register",
        json={"email": "grace@example.com", "username": "grace", "password": password},
    )
    body = assert_problem(response, 422, reason)
    assert body["errors"][0]["field"] == "password"
    assert await count(gateway, User) == 0


async def test_a_taken_email_or_username_is_a_conflict(client, gateway, alice) -> None:
    for email, username in (("alice@example.com", "alice2"), ("other@example.com", "ALICE")):
        response = await client.post(
            "/auth/register",
            json={"email": email, "username": username, "password": STRONG_PASSWORD},
        )
        assert_problem(response, 409)
    assert await count(gateway, User) == 1


async def test_a_wrong_password_and_an_unknown_user_look_the_same(client, alice) -> None:
    wrong = await client.post(
        "/auth/login", json={"login": "alice", "password": "not the password"}
    )
    unknown = await client.post("/auth/login", json={"login": "nobody", "password": "whatever"})
    assert_problem(wrong, 401)
    assert_problem(unknown, 401)
    assert wrong.json()["detail"] == unknown.json()["detail"]
    assert wrong.headers["www-authenticate"].startswith("Bearer")


async def test_repeated_failed_sign_ins_are_rate_limited_with_retry_after(client, alice) -> None:
    for _ in range(5):
        response = await client.post("/auth/login", json={"login": "alice", "password": "wrong!"})
        assert response.status_code == 401
    limited = await client.post("/auth/login", json={"login": "alice", "password": STRONG_PASSWORD})
    body = assert_problem(limited, 429, "too many failed sign-ins")
    assert 0 < int(limited.headers["retry-after"]) <= 15 * 60
    assert body["title"] == "Too many attempts"


def _from(address: str) -> dict[str, str]:
    """Headers of a request passed on by the trusted proxy (the web app) for ``address``."""
    return {"X-Forwarded-For": address}


async def _sign_in(client, login: str, password: str, address: str) -> httpx.Response:
    return await client.post(
        "/auth/login", json={"login": login, "password": password}, headers=_from(address)
    )


async def test_the_username_and_the_e_mail_address_count_as_one_account(client, alice) -> None:
    for login in ("alice", "alice@example.com", "ALICE", "Alice@Example.com", "alice"):
        assert (await _sign_in(client, login, "wrong!", "203.0.113.5")).status_code == 401
    limited = await _sign_in(client, "alice@example.com", STRONG_PASSWORD, "203.0.113.5")
    assert_problem(limited, 429, "too many failed sign-ins for this account from this address")


async def test_a_stranger_guessing_cannot_lock_the_owner_out(client, alice) -> None:
    assert (await _sign_in(client, "alice", STRONG_PASSWORD, "198.51.100.7")).status_code == 200
    for _ in range(5):
        assert (await _sign_in(client, "alice", "guess", "203.0.113.9")).status_code == 401
    # The guesser's address may not try again, even with the right password ...
    assert_problem(await _sign_in(client, "alice", STRONG_PASSWORD, "203.0.113.9"), 429)
    # ... guessing on from other addresses is slowed down ...
    slowed = await _sign_in(client, "alice", "guess", "203.0.113.10")
    assert_problem(slowed, 429, "slowed down")
    # ... and the owner, where they signed in before, gets in at once.
    owner = await _sign_in(client, "alice", STRONG_PASSWORD, "198.51.100.7")
    assert owner.status_code == 200, owner.text


async def test_the_owner_on_a_new_machine_waits_seconds_not_the_window(client, alice) -> None:
    for n in range(5):  # the account is at its limit: 1 s between attempts from new places
        assert (await _sign_in(client, "alice", "guess", f"203.0.113.{n}")).status_code == 401
    waiting = await _sign_in(client, "alice", STRONG_PASSWORD, "192.0.2.80")
    assert_problem(waiting, 429, "slowed down")
    retry_after = int(waiting.headers["retry-after"])
    assert retry_after == 1
    await asyncio.sleep(retry_after + 0.2)
    assert (await _sign_in(client, "alice", STRONG_PASSWORD, "192.0.2.80")).status_code == 200


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/auth/password", lambda password: {"current_password": password,
                                             "new_password": "another Long passphrase 42"}),
        ("/auth/profile", lambda password: {"email": "alice2@example.com",
                                            "current_password": password}),
    ],
)  # fmt: skip
async def test_checks_of_the_current_password_have_the_sign_in_limits(
    client, alice, path, body
) -> None:
    assert (await _sign_in(client, "alice", STRONG_PASSWORD, "198.51.100.20")).status_code == 200
    for _ in range(5):
        wrong = await client.put(path, headers=alice.headers, json=body("not it"))
        assert_problem(wrong, 401)
    limited = await client.put(path, headers=alice.headers, json=body(STRONG_PASSWORD))
    assert_problem(limited, 429, "too many failed password checks")
    # Nothing changed: the password and the e-mail address are what they were.
    assert (await _sign_in(client, "alice", STRONG_PASSWORD, "198.51.100.20")).status_code == 200
    me = await client.get("/auth/me", headers=alice.headers)
    assert me.json()["email"] == "alice@example.com"


async def test_one_address_is_limited_across_accounts(client, gateway) -> None:
    limit = gateway.settings.login_attempts_per_address
    statuses = [
        (await client.post("/auth/login", json={"login": f"u{n}", "password": "x"})).status_code
        for n in range(limit + 1)
    ]
    assert statuses[:limit] == [401] * limit
    assert statuses[limit] == 429


async def test_asking_which_e_mail_addresses_have_accounts_is_rate_limited(
    client, gateway, alice
) -> None:
    limit = gateway.settings.login_attempts_per_address
    probes = [
        await client.post(
            "/auth/register",
            json={"email": f"someone{n}@example.com", "username": "alice",
                  "password": STRONG_PASSWORD},
            headers=_from("203.0.113.40"),
        )
        for n in range(limit + 1)
    ]  # fmt: skip
    assert [probe.status_code for probe in probes[:limit]] == [409] * limit
    assert_problem(probes[limit], 429, "too many sign-up attempts from this address")
    # Sign-ins from there wait as well; the address's limit is one for both.
    signing_in = await _sign_in(client, "alice", STRONG_PASSWORD, "203.0.113.40")
    assert_problem(signing_in, 429, "from this address")
    assert await count(gateway, User) == 1


async def test_refresh_rotates_the_refresh_token(client, alice) -> None:
    first = await client.post(
        "/auth/refresh", json={"refresh_token": alice.tokens["refresh_token"]}
    )
    assert first.status_code == 200
    rotated = first.json()
    assert rotated["refresh_token"] != alice.tokens["refresh_token"]
    me = await client.get(
        "/auth/me", headers={"Authorization": f"Bearer {rotated['access_token']}"}
    )
    assert me.status_code == 200
    reused = await client.post(
        "/auth/refresh", json={"refresh_token": alice.tokens["refresh_token"]}
    )
    assert_problem(reused, 401, "refresh token is not valid")


async def test_a_copied_refresh_token_used_again_ends_the_whole_session(
    client, gateway, alice
) -> None:
    stolen = alice.tokens["refresh_token"]
    thief = (await client.post("/auth/refresh", json={"refresh_token": stolen})).json()
    again = await client.post("/auth/refresh", json={"refresh_token": thief["refresh_token"]})
    thief = again.json()
    async with gateway.app.state.sessionmaker() as db:  # a minute later, the owner's turn
        earlier = datetime.now(UTC) - timedelta(minutes=1)
        await db.execute(update(RetiredRefreshToken).values(retired_at=earlier))
        await db.commit()
    owner = await client.post("/auth/refresh", json={"refresh_token": stolen})
    assert_problem(owner, 401, "refresh token is not valid")
    # The session is over for whoever holds it: the thief's newest tokens stop working too.
    thief_headers = {"Authorization": f"Bearer {thief['access_token']}"}
    assert_problem(await client.get("/auth/me", headers=thief_headers), 401, "session has ended")
    refreshed = await client.post("/auth/refresh", json={"refresh_token": thief["refresh_token"]})
    assert_problem(refreshed, 401)
    # Signing in again works, and starts a new session.
    login = await client.post("/auth/login", json={"login": "alice", "password": STRONG_PASSWORD})
    assert login.status_code == 200


async def test_concurrent_refreshes_of_one_token_succeed_once(client, alice) -> None:
    body = {"refresh_token": alice.tokens["refresh_token"]}
    responses = await asyncio.gather(*(client.post("/auth/refresh", json=body) for _ in range(5)))
    assert sorted(r.status_code for r in responses) == [200, 401, 401, 401, 401]
    # A race of one client's own requests is not taken for a copied token: the session lives.
    [won] = [r.json() for r in responses if r.status_code == 200]
    me = await client.get("/auth/me", headers={"Authorization": f"Bearer {won['access_token']}"})
    assert me.status_code == 200


async def test_an_access_token_outliving_its_session_is_refused(client, gateway, alice) -> None:
    assert (await client.get("/auth/me", headers=alice.headers)).status_code == 200
    async with gateway.app.state.sessionmaker() as db:  # the session ends before the token
        await db.execute(
            update(Session).values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
        await db.commit()
    assert_problem(await client.get("/auth/me", headers=alice.headers), 401, "session has expired")


async def test_after_logout_the_old_access_and_refresh_tokens_are_refused(client, alice) -> None:
    other_device = await client.post(
        "/auth/login", json={"login": "alice", "password": STRONG_PASSWORD}
    )
    logout = await client.post("/auth/logout", headers=alice.headers)
    assert logout.status_code == 204
    assert_problem(await client.get("/auth/me", headers=alice.headers), 401, "session has ended")
    refresh = await client.post(
        "/auth/refresh", json={"refresh_token": alice.tokens["refresh_token"]}
    )
    assert_problem(refresh, 401)
    still = {"Authorization": f"Bearer {other_device.json()['access_token']}"}
    assert (await client.get("/auth/me", headers=still)).status_code == 200


async def test_expired_forged_and_malformed_tokens_are_refused(client, gateway, alice) -> None:
    claims = jwt.decode(alice.tokens["access_token"], options={"verify_signature": False})
    key = gateway.settings.require_secret_key()
    past = datetime.now(UTC) - timedelta(hours=1)
    expired = TokenIssuer(key, 60).issue(claims["sub"], claims["sid"], now=past)
    forged = TokenIssuer(secrets.token_urlsafe(48), 900).issue(claims["sub"], claims["sid"])
    unsigned = jwt.encode({**claims, "alg": "none"}, key="", algorithm="none")
    cases = {
        "expired": (expired, "expired"),
        "forged": (forged, "not valid"),
        "unsigned": (unsigned, "not valid"),
        "garbage": ("not.a.token", "not valid"),
    }
    for token, reason in cases.values():
        response = await client.get("/auth/me", headers={"Authorization": f"Bearer {token}"})
        assert_problem(response, 401, reason)
    assert_problem(await client.get("/auth/me"), 401, "sign in")
    basic = await client.get("/auth/me", headers={"Authorization": "Basic YWxpY2U6eA=="})
    assert_problem(basic, 401)


async def test_changing_the_email_needs_the_current_password(client, alice) -> None:
    without = await client.put(
        "/auth/profile", headers=alice.headers, json={"email": "new@example.com"}
    )
    assert_problem(without, 401, "current password")
    wrong = await client.put(
        "/auth/profile",
        headers=alice.headers,
        json={"email": "new@example.com", "current_password": "nope"},
    )
    assert_problem(wrong, 401)
    assert (await client.get("/auth/me", headers=alice.headers)).json()[
        "email"
    ] == "alice@example.com"
    ok = await client.put(
        "/auth/profile",
        headers=alice.headers,
        json={
            "email": "new@example.com",
            "current_password": STRONG_PASSWORD,
            "display_name": "Al",
        },
    )
    assert ok.status_code == 200
    assert (ok.json()["email"], ok.json()["display_name"]) == ("new@example.com", "Al")


async def test_a_taken_username_cannot_be_taken_over(client, alice, bob) -> None:
    response = await client.put("/auth/profile", headers=bob.headers, json={"username": "Alice"})
    assert_problem(response, 409, "taken")


async def test_a_password_change_signs_out_every_other_session(client, gateway, alice) -> None:
    other = (
        await client.post("/auth/login", json={"login": "alice", "password": STRONG_PASSWORD})
    ).json()
    new_password = "a much better passphrase 2"
    changed = await client.put(
        "/auth/password",
        headers=alice.headers,
        json={"current_password": STRONG_PASSWORD, "new_password": new_password},
    )
    assert changed.status_code == 204
    assert (await client.get("/auth/me", headers=alice.headers)).status_code == 200
    other_headers = {"Authorization": f"Bearer {other['access_token']}"}
    assert_problem(await client.get("/auth/me", headers=other_headers), 401)
    refresh = await client.post("/auth/refresh", json={"refresh_token": other["refresh_token"]})
    assert_problem(refresh, 401)
    old = await client.post("/auth/login", json={"login": "alice", "password": STRONG_PASSWORD})
    assert_problem(old, 401)
    new = await client.post("/auth/login", json={"login": "alice", "password": new_password})
    assert new.status_code == 200


async def test_a_password_change_needs_the_right_current_password(client, alice) -> None:
    response = await client.put(
        "/auth/password",
        headers=alice.headers,
        json={"current_password": "wrong", "new_password": "a much better passphrase 2"},
    )
    assert_problem(response, 401, "current password")
    weak = await client.put(
        "/auth/password",
        headers=alice.headers,
        json={"current_password": STRONG_PASSWORD, "new_password": "short"},
    )
    assert_problem(weak, 422, "at least 10")


async def test_profile_photo_upload_is_served_as_a_file(client, alice) -> None:
    uploaded = await client.put(
        "/auth/photo", headers=alice.headers, files={"photo": ("me.png", PNG, "image/png")}
    )
    assert uploaded.status_code == 200
    photo_url = uploaded.json()["photo_url"]
    assert photo_url.startswith("/auth/photo")
    served = await client.get(photo_url, headers=alice.headers)
    assert served.status_code == 200
    assert served.headers["content-type"] == "image/png"
    assert served.content == PNG
    assert (await client.delete("/auth/photo", headers=alice.headers)).status_code == 204
    assert_problem(await client.get("/auth/photo", headers=alice.headers), 404)


async def test_a_photo_that_is_not_an_image_or_too_large_is_refused(client, gateway, alice) -> None:
    fake = await client.put(
        "/auth/photo", headers=alice.headers, files={"photo": ("me.png", b"<svg/>", "image/png")}
    )
    assert_problem(fake, 422, "PNG, JPEG, GIF or WebP")
    big = PNG + b"\x00" * gateway.settings.max_photo_bytes
    too_large = await client.put(
        "/auth/photo", headers=alice.headers, files={"photo": ("me.png", big, "image/png")}
    )
    assert_problem(too_large, 413)
    assert (await client.get("/auth/me", headers=alice.headers)).json()["photo_url"] is None
    async with gateway.app.state.sessionmaker() as db:
        assert await db.scalar(select(func.count()).select_from(UserPhoto)) == 0


async def test_a_photo_kept_in_the_data_folder_by_an_earlier_version_is_still_served(
    client, gateway, alice
) -> None:
    async with gateway.app.state.sessionmaker() as db:
        user = await db.scalar(select(User).where(User.username == alice.username))
        user.photo_content_type, user.photo_updated_at = "image/png", datetime.now(UTC)
        await db.commit()
    legacy = gateway.settings.data_dir / "users" / user.id / "photo"
    legacy.parent.mkdir(parents=True)
    legacy.write_bytes(PNG)
    for _ in range(2):  # moved into the database the first time, served from there after
        served = await client.get("/auth/photo", headers=alice.headers)
        assert served.status_code == 200
        assert served.content == PNG
        assert served.headers["content-type"] == "image/png"
    assert not legacy.exists()
    assert (await client.delete("/auth/photo", headers=alice.headers)).status_code == 204
    assert_problem(await client.get("/auth/photo", headers=alice.headers), 404)


async def test_sessions_record_where_they_came_from(client, gateway, alice) -> None:
    async with gateway.app.state.sessionmaker() as db:
        session = await db.scalar(select(Session))
    assert session.client_address == "127.0.0.1"
    assert session.user_agent.startswith("python-httpx")
