"""``send_email``: a message from the person's own mail account, files attached.

The person's SMTP settings arrive sealed with the approved call (see
:mod:`troika_shared.vault`); the mail server is reached like any other outbound destination,
so a private address needs the operator's allow list.
"""

from __future__ import annotations

import asyncio
import mimetypes
import socket
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import formataddr, formatdate, make_msgid
from typing import TYPE_CHECKING, Any

import aiosmtplib
import anyio.to_thread
import httpcore

from troika_executor.net import checked_addresses
from troika_shared.messages import ToolOutcome

if TYPE_CHECKING:
    from troika_executor.net import OutboundPolicy
    from troika_executor.workspace import Workspace
    from troika_shared.catalogue import SendEmailArgs

__all__ = ["ATTACHMENTS_LIMIT", "build_message", "send_email"]

ATTACHMENTS_LIMIT = 25 * 1024 * 1024  # most mail servers refuse larger messages
_TIMEOUT_S = 30

NO_SETTINGS = (
    "no e-mail account is set up: the person must add their SMTP settings "
    "(PUT /credentials/smtp) before anything can be sent"
)


class MailProblem(Exception):
    """Something the agent or the person can fix: a missing file, a refused address."""


def build_message(args: SendEmailArgs, smtp: dict[str, Any], workspace: Workspace) -> EmailMessage:
    """The message as it will be sent, attachments read from the task's folder.

    Raises:
        MailProblem: An attachment is missing or the attachments are too large.
        OutsideWorkspace: An attachment's path leads outside the task's folder.
    """
    message = EmailMessage()
    sender = str(smtp["from_address"])
    message["From"] = formataddr((str(smtp.get("from_name") or ""), sender))
    message["To"] = ", ".join(args.to)
    if args.cc:
        message["Cc"] = ", ".join(args.cc)
    if args.reply_to:
        message["Reply-To"] = args.reply_to
    message["Subject"] = args.subject
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = make_msgid(domain=Address(addr_spec=sender).domain or None)
    message.set_content(args.body)
    if args.html_body is not None:
        message.add_alternative(args.html_body, subtype="html")
    total = 0
    for name in args.attachments:
        path = workspace.path(name)
        if not path.is_file():
            raise MailProblem(f"there is no file {name!r} to attach")
        total += path.stat().st_size
        if total > ATTACHMENTS_LIMIT:
            raise MailProblem(
                f"the attachments are larger than {ATTACHMENTS_LIMIT // (1024 * 1024)} MB"
            )
        kind, encoding = mimetypes.guess_type(path.name)
        if kind is None or encoding is not None:
            kind = "application/octet-stream"
        maintype, subtype = kind.split("/", 1)
        message.add_attachment(
            path.read_bytes(), maintype=maintype, subtype=subtype, filename=path.name
        )
    return message


async def _connect(host: str, port: int, policy: OutboundPolicy) -> socket.socket:
    """A connected socket to a checked address of the mail server."""
    addresses = await checked_addresses(host, port, policy)
    loop = asyncio.get_running_loop()
    last: OSError | None = None
    for address in addresses:
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setblocking(False)  # noqa: FBT003 - the socket API's own flag
        try:
            async with asyncio.timeout(_TIMEOUT_S):
                await loop.sock_connect(sock, (address, port))
        except OSError as exc:  # TimeoutError included
            sock.close()
            last = exc
            continue
        return sock
    raise last or OSError(f"cannot reach {host}")


async def send_email(
    args: SendEmailArgs,
    smtp: dict[str, Any] | None,
    workspace: Workspace,
    policy: OutboundPolicy,
) -> ToolOutcome:
    """Sends the message through the person's mail server and says to whom it went."""
    if not smtp:
        return ToolOutcome(ok=False, error=NO_SETTINGS)
    try:
        message = await anyio.to_thread.run_sync(build_message, args, smtp, workspace)
    except MailProblem as exc:
        return ToolOutcome(ok=False, error=str(exc))
    host, port = str(smtp["host"]), int(smtp["port"])
    security = smtp.get("security", "starttls")
    try:
        sock = await _connect(host, port, policy)
    except httpcore.ConnectError as exc:
        return ToolOutcome(ok=False, error=f"cannot reach the mail server: {exc}")
    except OSError as exc:
        reason = exc.strerror or str(exc)
        return ToolOutcome(ok=False, error=f"cannot reach the mail server {host}:{port}: {reason}")
    recipients = [*args.to, *args.cc, *args.bcc]
    try:
        refused, reply = await aiosmtplib.send(
            message,
            sender=str(smtp["from_address"]),
            recipients=recipients,
            hostname=host,
            port=None,
            sock=sock,
            username=smtp.get("username") or None,
            password=smtp.get("password") or None,
            use_tls=security == "tls",
            start_tls=security == "starttls",
            timeout=_TIMEOUT_S,
        )
    except aiosmtplib.SMTPException as exc:
        return ToolOutcome(ok=False, error=f"the mail server did not take the message: {exc}")
    finally:
        sock.close()
    delivered = [address for address in recipients if address not in refused]
    attached = ", ".join(args.attachments) or "no attachments"
    output = f"sent {args.subject!r} to {', '.join(delivered)} ({attached}); server: {reply}"
    if refused:
        output += "; refused: " + ", ".join(f"{a} ({r.message})" for a, r in refused.items())
    return ToolOutcome(ok=True, output=output)
