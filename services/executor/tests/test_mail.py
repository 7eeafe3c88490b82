"""send_email through a real SMTP server on loopback (aiosmtpd), and the sealed credentials."""

from __future__ import annotations

import openpyxl
import pytest

from troika_executor.handlers import execute
from troika_executor.mail import NO_SETTINGS
from troika_executor.net import OutboundPolicy
from troika_executor.tools import Toolbox, run_tool
from troika_shared.approvals import approval_key, call_key, sign_approval
from troika_shared.messages import ToolCall, ToolExecute
from troika_shared.vault import call_secrets_key, seal_call_secrets

TASK = "task-mail"
SECRET = "a-deployment-secret-key-of-enough-length-0123"


def workbook(tmp_path, name: str = "totals.xlsx") -> bytes:
    folder = tmp_path / "workspaces" / TASK
    folder.mkdir(parents=True, exist_ok=True)
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["region", "total"])
    sheet.append(["North", 1250.5])
    book.save(folder / name)
    return (folder / name).read_bytes()


def toolbox(tmp_path, mail_server) -> Toolbox:
    return Toolbox(tmp_path, OutboundPolicy.of([f"127.0.0.1:{mail_server.port}"]))


async def send(tmp_path, mail_server, smtp=None, box=None, **arguments):
    arguments = {"to": ["bob@example.com"], "subject": "Totals", "body": "Hi"} | arguments
    credentials = {"smtp": smtp or mail_server.settings()}
    return await run_tool(
        box or toolbox(tmp_path, mail_server), TASK, "send_email", arguments, credentials
    )


async def test_the_message_arrives_exactly_as_approved_with_its_attachment(
    tmp_path, mail_server
) -> None:
    sheet = workbook(tmp_path)
    result = await send(
        tmp_path,
        mail_server,
        to=["bob@example.com"],
        cc=["carol@example.com"],
        bcc=["audit@example.com"],
        subject="Totals per region ✓",
        body="Hello Bob,\n\nthe totals are attached.\n",
        html_body="<p>Hello Bob,</p><p>the totals are <b>attached</b>.</p>",
        attachments=["totals.xlsx"],
    )
    assert result.ok, result.error
    assert "bob@example.com" in result.output
    [mail] = mail_server.received
    assert mail.login == "alice"  # signed in with the person's own account
    assert mail.sender == "alice@example.com"
    assert sorted(mail.recipients) == ["audit@example.com", "bob@example.com", "carol@example.com"]
    message = mail.message
    assert message["Subject"] == "Totals per region ✓"
    assert message["From"] == "Alice Example <alice@example.com>"
    assert message["To"] == "bob@example.com"
    assert message["Cc"] == "carol@example.com"
    assert message["Bcc"] is None  # blind copies are not shown to the others
    plain = message.get_body(("plain",)).get_content().replace("\r\n", "\n")
    assert plain == "Hello Bob,\n\nthe totals are attached.\n"
    assert "<b>attached</b>" in message.get_body(("html",)).get_content()
    [attachment] = list(message.iter_attachments())
    assert attachment.get_filename() == "totals.xlsx"
    assert attachment.get_content_type() == (
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    )
    assert attachment.get_content() == sheet


async def test_without_smtp_settings_nothing_is_sent(tmp_path, mail_server) -> None:
    result = await run_tool(
        toolbox(tmp_path, mail_server), TASK, "send_email",
        {"to": ["bob@example.com"], "subject": "x", "body": "y"}, {},
    )  # fmt: skip
    assert (result.ok, result.error) == (False, NO_SETTINGS)
    assert mail_server.connections == 0


async def test_wrong_password_is_reported_and_nothing_is_sent(tmp_path, mail_server) -> None:
    result = await send(tmp_path, mail_server, smtp=mail_server.settings(password="wrong"))
    assert result.ok is False
    assert "did not take the message" in result.error
    assert "wrong" not in result.error  # the password is never repeated
    assert mail_server.received == []


async def test_a_refused_recipient_is_named_and_the_others_still_get_it(
    tmp_path, mail_server
) -> None:
    mail_server.refuse.add("nobody@example.com")
    result = await send(tmp_path, mail_server, to=["bob@example.com", "nobody@example.com"])
    assert result.ok, result.error
    assert "refused: nobody@example.com" in result.output
    [mail] = mail_server.received
    assert mail.recipients == ["bob@example.com"]


@pytest.mark.parametrize(
    ("attachment", "error"),
    [
        ("missing.xlsx", "there is no file 'missing.xlsx' to attach"),
        ("../other-task/secret.txt", "refused"),
        ("/etc/passwd", "refused"),
    ],
)
async def test_attachments_come_only_from_the_task_folder(
    tmp_path, mail_server, attachment, error
) -> None:
    workbook(tmp_path)
    result = await send(tmp_path, mail_server, attachments=[attachment])
    assert result.ok is False
    assert result.error.startswith(error)
    assert mail_server.connections == 0


async def test_a_mail_server_on_a_private_address_needs_the_operators_allow_list(
    tmp_path, mail_server
) -> None:
    result = await send(tmp_path, mail_server, box=Toolbox(tmp_path))
    assert result.ok is False
    assert "not a public address" in result.error
    assert mail_server.connections == 0


@pytest.mark.parametrize(
    "arguments",
    [
        {"to": [], "subject": "x", "body": "y"},
        {"to": ["not-an-address"], "subject": "x", "body": "y"},
        {"to": ["a@example.com"], "subject": "x\r\nBcc: everyone@example.com", "body": "y"},
        {"to": ["a@example.com"], "subject": "x", "body": "y", "attachments": ["a"] * 21},
    ],
)
async def test_malformed_messages_are_refused_before_anything_is_sent(
    tmp_path, mail_server, arguments
) -> None:
    result = await run_tool(
        toolbox(tmp_path, mail_server), TASK, "send_email", arguments,
        {"smtp": mail_server.settings()},
    )  # fmt: skip
    assert result.ok is False
    assert result.error.startswith("invalid arguments")
    assert mail_server.connections == 0


def approved(arguments: dict, secrets: str) -> ToolExecute:
    call = ToolCall(
        key=call_key(TASK, "s1", "send_email", arguments), tool="send_email", arguments=arguments
    )
    seal = sign_approval(approval_key(SECRET), TASK, call)
    return ToolExecute(
        correlation_id=TASK, user_id="u", subtask_id="s1", call=call, approval=seal,
        secrets=secrets,
    )  # fmt: skip


async def test_the_executor_opens_credentials_sealed_for_exactly_this_call(
    tmp_path, mail_server
) -> None:
    arguments = {"to": ["bob@example.com"], "subject": "Totals", "body": "Hi"}
    key = call_secrets_key(SECRET)
    request = approved(arguments, "")
    secrets = seal_call_secrets(key, TASK, request.call.key, {"smtp": mail_server.settings()})
    box = toolbox(tmp_path, mail_server)

    sent = await execute(approved(arguments, secrets), box, approval_key(SECRET), secrets_key=key)
    assert sent.outcome.ok, sent.outcome.error
    assert len(mail_server.received) == 1

    # The same sealed credentials moved onto another call do not open there.
    other = {"to": ["mallory@example.com"], "subject": "Totals", "body": "Hi"}
    moved = await execute(approved(other, secrets), box, approval_key(SECRET), secrets_key=key)
    assert moved.outcome.ok is False
    assert "could not be opened" in moved.outcome.error
    assert len(mail_server.received) == 1


async def test_credentials_sealed_long_ago_no_longer_open(tmp_path, mail_server) -> None:
    arguments = {"to": ["bob@example.com"], "subject": "Totals", "body": "Hi"}
    key = call_secrets_key(SECRET)
    request = approved(arguments, "")
    stale = seal_call_secrets(
        key, TASK, request.call.key, {"smtp": mail_server.settings()}, ttl_s=-1
    )
    result = await execute(
        approved(arguments, stale), toolbox(tmp_path, mail_server), approval_key(SECRET),
        secrets_key=key,
    )  # fmt: skip
    assert result.outcome.ok is False
    assert "could not be opened" in result.outcome.error
    assert mail_server.connections == 0
