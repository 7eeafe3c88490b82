"""A small web site on loopback for the browser tools' tests: a login, a two-step application
form that checks what it is sent, a table of orders, a file to download, and pages that try to
lead the browser to loopback and to the cloud metadata address.

A second server, :attr:`Site.forbidden`, stands for something on the machine the browser must
never reach: it records every request it gets.
"""

from __future__ import annotations

import html
import secrets
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

__all__ = ["ORDERS", "PASSWORD", "REPORT", "USERNAME", "Site"]

USERNAME, PASSWORD = "ada", "correct-horse-battery"
ORDERS = (("A-1001", "Lamp", "2", "39.90"), ("A-1002", "Desk", "1", "249.00"),
          ("A-1003", "Chair", "4", "356.00"))  # fmt: skip
REPORT = b"order,item,quantity,total\n" + b"".join(
    f"{o},{i},{q},{t}\n".encode() for o, i, q, t in ORDERS
)


def _page(title: str, body: str) -> bytes:
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"</head><body><h1>{html.escape(title)}</h1>{body}</body></html>"
    ).encode()


@dataclass
class _State:
    sessions: dict[str, str] = field(default_factory=dict)  # sid -> user
    drafts: dict[str, dict[str, str]] = field(default_factory=dict)  # sid -> step 1's answers
    applications: list[dict[str, str]] = field(default_factory=list)
    logins: list[str] = field(default_factory=list)
    forbidden_hits: list[str] = field(default_factory=list)
    slow_hits: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


class Site:
    """The site and the forbidden server, each on its own loopback port."""

    def __init__(self) -> None:
        self.state = _State()
        self.forbidden = ThreadingHTTPServer(("127.0.0.1", 0), _forbidden_handler(self.state))
        self.server = ThreadingHTTPServer(
            ("127.0.0.1", 0), _site_handler(self.state, self.forbidden.server_address[1])
        )
        self._threads = [
            threading.Thread(target=s.serve_forever, daemon=True)
            for s in (self.server, self.forbidden)
        ]

    @property
    def port(self) -> int:
        """The site's port."""
        return int(self.server.server_address[1])

    @property
    def forbidden_port(self) -> int:
        """The forbidden server's port."""
        return int(self.forbidden.server_address[1])

    @property
    def url(self) -> str:
        """The site's address."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def applications(self) -> list[dict[str, str]]:
        """The applications the form accepted."""
        return list(self.state.applications)

    @property
    def slow_hits(self) -> int:
        """How often the slow page was asked for."""
        return self.state.slow_hits

    @property
    def logins(self) -> list[str]:
        """Who signed in, in order."""
        return list(self.state.logins)

    @property
    def forbidden_hits(self) -> list[str]:
        """Every path the forbidden server was asked for."""
        return list(self.state.forbidden_hits)

    def __enter__(self) -> Site:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        for server in (self.server, self.forbidden):
            server.shutdown()
            server.server_close()


def _forbidden_handler(state: _State) -> type[BaseHTTPRequestHandler]:
    class Forbidden(BaseHTTPRequestHandler):
        def log_message(self, *_: object) -> None:
            pass

        def do_GET(self) -> None:
            with state.lock:
                state.forbidden_hits.append(self.path)
            body = b"secret: the machine's own service"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:
            self.do_GET()

    return Forbidden


def _site_handler(state: _State, forbidden_port: int) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *_: object) -> None:
            pass

        # --- plumbing ---------------------------------------------------------------------

        def _cookies(self) -> dict[str, str]:
            found = {}
            for part in (self.headers.get("Cookie") or "").split(";"):
                name, _, value = part.strip().partition("=")
                if name:
                    found[name] = value
            return found

        def _user(self) -> str | None:
            return state.sessions.get(self._cookies().get("sid", ""))

        def _send(self, status: int, body: bytes, kind: str = "text/html; charset=utf-8",
                  **headers: str) -> None:  # fmt: skip
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            for name, value in headers.items():
                self.send_header(name.replace("_", "-"), value)
            self.end_headers()
            self.wfile.write(body)

        def _redirect(self, to: str, **headers: str) -> None:
            self._send(303 if self.command == "POST" else 302, b"", Location=to, **headers)

        def _form(self) -> dict[str, str]:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length).decode()
            return {k: v[0] for k, v in parse_qs(raw, keep_blank_values=True).items()}

        # --- pages --------------------------------------------------------------------------

        def do_GET(self) -> None:  # noqa: PLR0912, PLR0915 - one branch per page
            url = urlsplit(self.path)
            query = {k: v[0] for k, v in parse_qs(url.query).items()}
            path = url.path
            if path == "/":
                links = ("<p><a href='/login'>Sign in</a> · <a href='/orders'>Orders</a> · "
                         "<a href='/apply'>Apply for an account</a></p>")  # fmt: skip
                self._send(200, _page("Acme shop", links))
            elif path == "/login":
                self._send(200, _login_page(""))
            elif path == "/account":
                user = self._user()
                if user is None:
                    self._redirect("/login")
                    return
                body = (f"<p>Signed in as {html.escape(user)}.</p>"
                        "<p><a href='/orders'>Your orders</a></p>")  # fmt: skip
                self._send(200, _page("Your account", body))
            elif path == "/orders":
                if self._user() is None:
                    self._redirect("/login")
                    return
                rows = "".join(
                    f"<tr><td>{o}</td><td>{i}</td><td>{q}</td><td>{t}</td></tr>"
                    for o, i, q, t in ORDERS
                )
                body = (
                    "<table><thead><tr><th>Order</th><th>Item</th><th>Quantity</th>"
                    f"<th>Total</th></tr></thead><tbody>{rows}</tbody></table>"
                    "<p><a href='/report.csv'>Download the report</a></p>"
                )
                self._send(200, _page("Your orders", body))
            elif path == "/report.csv":
                if self._user() is None:
                    self._send(403, b"sign in first", "text/plain")
                    return
                attachment = 'attachment; filename="orders-report.csv"'
                self._send(200, REPORT, "text/csv", Content_Disposition=attachment)
            elif path == "/apply":
                self._send(200, _apply_page({}, {}))
            elif path == "/apply/2":
                draft = state.drafts.get(self._cookies().get("draft", ""))
                if draft is None:
                    self._redirect("/apply")
                    return
                self._send(200, _plan_page(draft, ""))
            elif path == "/apply/done":
                name = html.escape(query.get("name", ""))
                self._send(200, _page("Application received", f"<p>Thank you, {name}.</p>"))
            elif path == "/visit":  # a visitor's own cookie, to see whose a page shows
                name = query.get("name", "")
                self._send(200, _page("Welcome", f"<p>Hello {html.escape(name)}</p>"),
                           Set_Cookie=f"visitor={name}; Path=/; HttpOnly")  # fmt: skip
            elif path == "/whoami":
                visitor = self._cookies().get("visitor", "nobody")
                self._send(200, _page("Who am I", f"<p>You are {html.escape(visitor)}.</p>"))
            elif path == "/slow":  # a page that takes its time, then goes on to ``to``
                with state.lock:
                    state.slow_hits += 1
                time.sleep(float(query.get("s", "3")))
                self._redirect(query.get("to", "/"))
            elif path == "/to-loopback":
                self._redirect(f"http://127.0.0.1:{forbidden_port}/secret")
            elif path == "/to-metadata":
                self._redirect("http://169.254.169.254/latest/meta-data/")
            elif path == "/leaky":
                target = f"http://127.0.0.1:{forbidden_port}"
                body = (
                    f"<p>A page with hidden requests.</p><img src='{target}/pixel.png'>"
                    f"<script>fetch('{target}/api').catch(() => "
                    "document.body.insertAdjacentHTML('beforeend', '<p>fetch blocked</p>'))"
                    "</script>"
                )
                self._send(200, _page("Leaky page", body))
            else:
                self._send(404, _page("Not found", ""))

        def do_POST(self) -> None:
            form = self._form()
            if self.path == "/login":
                if form.get("username") == USERNAME and form.get("password") == PASSWORD:
                    sid = secrets.token_hex(16)
                    with state.lock:
                        state.sessions[sid] = USERNAME
                        state.logins.append(USERNAME)
                    self._redirect("/account", Set_Cookie=f"sid={sid}; Path=/; HttpOnly")
                else:
                    self._send(401, _login_page("Wrong username or password."))
            elif self.path == "/apply":
                problems = {}
                if len(form.get("full_name", "").strip()) < 2:
                    problems["full_name"] = "Please enter your full name."
                if "@" not in form.get("email", ""):
                    problems["email"] = "Please enter a valid e-mail address."
                if problems:
                    self._send(422, _apply_page(form, problems))
                    return
                draft_id = secrets.token_hex(8)
                state.drafts[draft_id] = form
                self._redirect("/apply/2", Set_Cookie=f"draft={draft_id}; Path=/")
            elif self.path == "/apply/2":
                draft = state.drafts.get(self._cookies().get("draft", ""))
                if draft is None:
                    self._redirect("/apply")
                    return
                if form.get("plan") not in ("basic", "pro"):
                    self._send(422, _plan_page(draft, "Please choose a plan."))
                    return
                with state.lock:
                    state.applications.append({**draft, **form})
                self._redirect(f"/apply/done?name={draft['full_name']}")
            else:
                self._send(404, _page("Not found", ""))

    return Handler


def _login_page(error: str) -> bytes:
    problem = f"<p class='error'>{html.escape(error)}</p>" if error else ""
    return _page(
        "Sign in",
        f"{problem}<form method='post' action='/login'>"
        "<label for='u'>Username</label> <input id='u' name='username'><br>"
        "<label for='p'>Password</label> <input id='p' name='password' type='password'><br>"
        "<button type='submit'>Sign in</button></form>",
    )


def _apply_page(values: dict[str, Any], problems: dict[str, str]) -> bytes:
    def row(name: str, label: str) -> str:
        value = html.escape(str(values.get(name, "")), quote=True)
        problem = problems.get(name)
        note = f" <span class='error'>{html.escape(problem)}</span>" if problem else ""
        return (f"<p><label for='{name}'>{label}</label> "
                f"<input id='{name}' name='{name}' value='{value}'>{note}</p>")  # fmt: skip

    return _page(
        "Apply: step 1 of 2",
        "<form method='post' action='/apply'>"
        + row("full_name", "Full name")
        + row("email", "E-mail")
        + "<button type='submit'>Next</button></form>",
    )


def _plan_page(draft: dict[str, str], problem: str) -> bytes:
    note = f"<p class='error'>{html.escape(problem)}</p>" if problem else ""
    return _page(
        "Apply: step 2 of 2",
        f"<p>Applying as {html.escape(draft.get('full_name', ''))}.</p>{note}"
        "<form method='post' action='/apply/2'>"
        "<label for='plan'>Plan</label> <select id='plan' name='plan'>"
        "<option value=''>Choose…</option><option value='basic'>Basic</option>"
        "<option value='pro'>Pro</option></select> "
        "<label for='c'>Comments</label> <textarea id='c' name='comments'></textarea>"
        "<button type='submit'>Send application</button></form>",
    )
