"""A person's SMTP settings: write-only secrets, stored encrypted, sent only sealed into the
approved call that needs them."""

from __future__ import annotations

import pytest
from sqlalchemy import select, text

from troika_gateway.credentials import load_secrets
from troika_gateway.db.models import Credential
from troika_shared.messages import ToolCall, ToolExecute, derive_id
from troika_shared.vault import VaultError, open_call_secrets

from .conftest import assert_problem
from .test_approvals import answer, pending
from .test_pipeline_rules import Driver
from .test_tasks import create

SMTP = {
    "host": "mail.example.com",
    "port": 465,
    "security": "tls",
    "username": "alice@example.com",
    "password": "app-password-0451",
    "from_address": "alice@example.com",
    "from_name": "Alice Example",
}


def email_call(to: str = "bob@example.com") -> ToolCall:
    arguments = {"to": [to], "subject": "Totals", "body": "Attached.", "attachments": []}
    return ToolCall(key=derive_id("email", to), tool="send_email", arguments=arguments)


async def stored(gateway) -> list[Credential]:
    async with gateway.app.state.sessionmaker() as db:
        return list(await db.scalars(select(Credential)))


async def test_smtp_settings_are_saved_and_the_password_is_never_shown(
    gateway, client, alice
) -> None:
    saved = await client.put("/credentials/smtp", headers=alice.headers, json=SMTP)
    assert saved.status_code == 200, saved.text
    view = saved.json()
    assert view["password_set"] is True
    assert view["settings"] == {k: v for k, v in SMTP.items() if k != "password"}
    for response in (
        await client.get("/credentials/smtp", headers=alice.headers),
        await client.get("/credentials", headers=alice.headers),
    ):
        assert response.status_code == 200
        assert "app-password-0451" not in response.text
    # At rest the secret is encrypted: no column of the row holds the password.
    async with gateway.app.state.sessionmaker() as db:
        raw = (await db.execute(text("SELECT * FROM credentials"))).all()
    assert len(raw) == 1
    assert "app-password-0451" not in repr(raw)


async def test_leaving_the_password_out_keeps_it_for_the_same_server_only(
    gateway, client, alice
) -> None:
    await client.put("/credentials/smtp", headers=alice.headers, json=SMTP)
    without = {k: v for k, v in SMTP.items() if k != "password"}
    renamed = await client.put(
        "/credentials/smtp", headers=alice.headers, json=without | {"from_name": "Alice E."}
    )
    assert renamed.status_code == 200, renamed.text
    assert renamed.json()["password_set"] is True
    me = (await client.get("/auth/me", headers=alice.headers)).json()
    async with gateway.app.state.sessionmaker() as db:
        kept = await load_secrets(db, gateway.settings, me["id"], "smtp")
    assert kept["password"] == "app-password-0451"
    # Another server must not receive the stored password: it has to be typed again.
    before = [(row.sealed, row.shown) for row in await stored(gateway)]
    elsewhere = without | {"host": "smtp.attacker.example"}
    refused = await client.put("/credentials/smtp", headers=alice.headers, json=elsewhere)
    assert_problem(refused, 422, "password again")
    assert [(row.sealed, row.shown) for row in await stored(gateway)] == before
    moved = await client.put(
        "/credentials/smtp", headers=alice.headers, json=elsewhere | {"password": "new-one-77"}
    )
    assert moved.status_code == 200, moved.text
    cleared = await client.put(
        "/credentials/smtp", headers=alice.headers, json=elsewhere | {"password": ""}
    )
    assert cleared.json()["password_set"] is False
    assert len(await stored(gateway)) == 1


async def test_a_password_goes_only_over_tls_except_to_a_local_relay(client, alice) -> None:
    plain = SMTP | {"security": "none", "port": 25}
    assert_problem(await client.put("/credentials/smtp", headers=alice.headers, json=plain), 422)
    local = plain | {"host": "127.0.0.1"}
    response = await client.put("/credentials/smtp", headers=alice.headers, json=local)
    assert response.status_code == 200, response.text
    no_login = plain | {"password": "", "username": ""}
    response = await client.put("/credentials/smtp", headers=alice.headers, json=no_login)
    assert response.status_code == 200, response.text


BAD_SETTINGS = [
    ({"port": 0}, "port"),
    ({"port": 70000}, "port"),
    ({"security": "ssl3"}, "security"),
    ({"from_address": "not an address"}, "from_address"),
    ({"host": "mail example com"}, "host"),
    ({"from_name": "Alice\r\nBcc: everyone@example.com"}, "from_name"),
    ({"shell": "rm -rf /"}, "shell"),
]


async def test_bad_smtp_settings_are_refused_and_change_nothing(gateway, client, alice) -> None:
    await client.put("/credentials/smtp", headers=alice.headers, json=SMTP)
    before = [(row.sealed, row.shown) for row in await stored(gateway)]
    for change, wrong in BAD_SETTINGS:
        response = await client.put("/credentials/smtp", headers=alice.headers, json=SMTP | change)
        [error] = assert_problem(response, 422)["errors"]
        assert error["field"] == wrong or f"`{wrong}`" in error["message"], change
    assert [(row.sealed, row.shown) for row in await stored(gateway)] == before


async def test_another_user_sees_no_settings_and_deleting_forgets_them(client, alice, bob) -> None:
    await client.put("/credentials/smtp", headers=alice.headers, json=SMTP)
    assert_problem(await client.get("/credentials/smtp", headers=bob.headers), 404)
    assert (await client.get("/credentials", headers=bob.headers)).json() == []
    assert (await client.delete("/credentials/smtp", headers=bob.headers)).status_code == 204
    assert (await client.get("/credentials/smtp", headers=alice.headers)).status_code == 200
    assert (await client.delete("/credentials/smtp", headers=alice.headers)).status_code == 204
    assert_problem(await client.get("/credentials/smtp", headers=alice.headers), 404)
    assert (await client.get("/credentials", headers=alice.headers)).json() == []


async def test_credentials_need_a_signed_in_user(client) -> None:
    assert_problem(await client.put("/credentials/smtp", json=SMTP), 401)


@pytest.fixture
async def d(gateway, client, alice) -> Driver:
    task = await create(client, alice, "E-mail Bob the totals")
    driver = Driver(gateway, client, alice, task["id"])
    await driver.plan()
    return driver


async def test_approving_an_email_without_smtp_settings_asks_for_them_first(d) -> None:
    await d.propose(email_call())
    [form] = await pending(d)
    assert form["kind"] == "input"
    assert set(form["prompt"]["form"]["properties"]) == {
        "to", "cc", "bcc", "subject", "body", "html_body", "attachments"
    }  # fmt: skip
    values = {"to": ["bob@example.com"], "subject": "Totals", "body": "Attached."}
    refused = await answer(d, form["id"], decision="approve", values=values)
    assert_problem(refused, 409, "PUT /credentials/smtp")
    assert await d.commands(ToolExecute) == []
    assert [row["id"] for row in await pending(d)] == [form["id"]]  # still waiting

    await d.client.put("/credentials/smtp", headers=d.account.headers, json=SMTP)
    approved = await answer(d, form["id"], decision="approve", values=values)
    assert approved.status_code == 200, approved.text
    [execute] = await d.commands(ToolExecute)
    key = d.gateway.settings.call_secrets_key()
    assert open_call_secrets(key, d.task_id, execute.call.key, execute.secrets) == {"smtp": SMTP}
    # Sealed for this call alone, and never in the clear on its way.
    with pytest.raises(VaultError):
        open_call_secrets(key, d.task_id, "another-call", execute.secrets)
    async with d.gateway.app.state.sessionmaker() as db:
        outbox = (await db.execute(text("SELECT * FROM outbox"))).all()
    assert "app-password-0451" not in repr(outbox)
    events = await d.client.get(f"/tasks/{d.task_id}/events", headers=d.account.headers)
    assert "app-password-0451" not in events.text


async def test_calls_of_tools_without_credentials_carry_none(d) -> None:
    await d.client.put("/credentials/smtp", headers=d.account.headers, json=SMTP)
    await d.propose(
        ToolCall(key="k-read", tool="read_file", arguments={"path": "notes.md"}),
    )
    [approval] = await pending(d)
    assert (await answer(d, approval["id"], decision="approve")).status_code == 200
    [execute] = await d.commands(ToolExecute)
    assert execute.secrets == ""
