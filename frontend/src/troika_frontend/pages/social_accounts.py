"""The profile's "Connected accounts": the person's X, Instagram, LinkedIn and Facebook accounts
the posting tools post as, connected by pasting a token or through the platform's sign-in, and
the page the platform sends the person back to after signing in."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import reflex as rx

from troika_client import ApiError, field_errors
from troika_frontend.components import badge, field_error, frame, panel, when
from troika_frontend.session import SessionState, settings

__all__ = ["CONNECTED_ROUTE", "SocialAccountsState", "connected_page", "social_accounts_panel"]

CONNECTED_ROUTE = "/profile/connected"
"""Where a platform sends the person back after its sign-in (the ``redirect_uri``)."""


@dataclass
class PlatformChoice:
    """A platform accounts can be connected on."""

    platform: str
    label: str
    sign_in: bool


@dataclass
class AccountRow:
    """A connected account, as the list shows it."""

    id: str
    platform: str
    label: str
    shown: str
    expires_at: str
    problem: str
    element_id: str


def _element_id(account: dict[str, Any]) -> str:
    """``social-account-<platform>-<username or account id>``, with any character an id
    selector would need escaped (an Instagram handle's dots) as ``-``."""
    who = str(account.get("username") or account.get("account_id") or account.get("id"))
    return re.sub(r"[^A-Za-z0-9_-]+", "-", f"social-account-{account['platform']}-{who}")


def _reason(exc: ApiError) -> str:
    """What went wrong in one line (the detail alone where a field's message repeats it)."""
    return exc.detail if exc.detail in field_errors(exc.errors).values() else exc.message


class SocialAccountsState(SessionState):
    """The person's connected accounts and the platforms they can connect."""

    accounts: list[AccountRow] = []  # noqa: RUF012 - Reflex state vars are declared on the class
    platforms: list[PlatformChoice] = []  # noqa: RUF012
    sign_ins: list[PlatformChoice] = []  # noqa: RUF012
    chosen: str = "twitter"
    errors: dict[str, str] = {}  # noqa: RUF012
    loaded: int = 0
    reading: bool = True
    completing: bool = True
    sign_in_error: str = ""

    @rx.event
    async def load(self) -> Any:  # noqa: ANN401 - Reflex event specs
        """Reads the platforms and the connected accounts; the form takes no typing meanwhile."""
        if not self.access_token:
            return
        self.reading = True
        yield
        try:
            await self._load()
        except ApiError as exc:
            yield rx.toast.error(exc.message)
        finally:
            self.reading = False

    async def _load(self) -> None:
        self.loaded += 1  # the form is drawn again: what was typed in it is cleared
        self.platforms = [
            PlatformChoice(
                platform=str(p["platform"]), label=str(p["label"]), sign_in=bool(p.get("sign_in"))
            )
            for p in await self._api("GET", "/social/platforms")
        ]
        self.sign_ins = [p for p in self.platforms if p.sign_in]
        if self.platforms and self.chosen not in {p.platform for p in self.platforms}:
            self.chosen = self.platforms[0].platform
        self.accounts = [
            AccountRow(
                id=str(a["id"]),
                platform=str(a["platform"]),
                label=str(a.get("label") or a["platform"]),
                shown=str(a.get("shown") or a.get("name") or a.get("account_id") or ""),
                expires_at=str(a.get("expires_at") or ""),
                problem=str(a.get("problem") or ""),
                element_id=_element_id(a),
            )
            for a in await self._api("GET", "/social/accounts")
        ]

    @rx.event
    async def paste(self, form: dict[str, Any]) -> Any:  # noqa: ANN401
        """Connects the account a pasted token belongs to (the platform says whose it is)."""
        self.errors = {}
        platform = str(form.get("platform") or self.chosen)
        self.chosen = platform
        body: dict[str, Any] = {
            "platform": platform,
            "access_token": str(form.get("access_token", "")).strip(),
        }
        if not body["access_token"]:
            self.errors = {"social.access_token": "Paste the access token the platform gave you."}
            return None
        if refresh := str(form.get("refresh_token", "")).strip():
            body["refresh_token"] = refresh
        if expires := str(form.get("expires_in", "")).strip():
            try:
                body["expires_in"] = int(expires)
            except ValueError:
                self.errors = {"social.expires_in": "must be a whole number of seconds"}
                return None
        try:
            account = await self._api("POST", "/social/accounts", json=body)
        except ApiError as exc:
            found = field_errors(exc.errors)
            self.errors = {f"social.{k}": v for k, v in found.items()} or {"social": exc.message}
            return None
        try:
            await self._load()
        except ApiError as exc:
            return rx.toast.error(exc.message)
        return rx.toast.success(f"{account['label']} account {account['shown']} connected.")

    @rx.event
    async def remove(self, account_id: str) -> Any:  # noqa: ANN401
        """Forgets an account and its tokens (its posts stay on the platform)."""
        try:
            await self._api("DELETE", f"/social/accounts/{account_id}")
            await self._load()
        except ApiError as exc:
            return rx.toast.error(exc.message)
        return rx.toast.success("The account is removed.")

    @rx.event
    async def sign_in(self, platform: str) -> Any:  # noqa: ANN401
        """Sends the browser to the platform's sign-in, which sends it back to
        :data:`CONNECTED_ROUTE` with a code."""
        redirect_uri = settings().url + CONNECTED_ROUTE
        try:
            started = await self._api(
                "POST", "/social/oauth", json={"platform": platform, "redirect_uri": redirect_uri}
            )
        except ApiError as exc:
            return rx.toast.error(exc.message)
        return rx.redirect(str(started["authorize_url"]))

    @rx.event
    async def complete_sign_in(self) -> Any:  # noqa: ANN401
        """On the page the platform sends the person back to: hands the code to the gateway,
        then shows the profile with the new account (or says why it was not connected)."""
        if not self.access_token:
            return
        self.completing = True
        self.sign_in_error = ""
        yield
        query = self.router.url.query_parameters
        state, code = query.get("state", ""), query.get("code", "")
        try:
            if query.get("error"):
                said = query.get("error_description") or query["error"]
                self.sign_in_error = f"The platform did not connect the account: {said}."
                return
            if not state or not code:
                self.sign_in_error = (
                    "The platform sent no sign-in code: connect the account again from your "
                    "profile."
                )
                return
            try:
                account = await self._api(
                    "POST", "/social/oauth/complete", json={"state": state, "code": code}
                )
            except ApiError as exc:
                self.sign_in_error = _reason(exc)
                return
        finally:
            self.completing = False
        yield rx.redirect("/profile", replace=True)
        yield rx.toast.success(f"{account['label']} account {account['shown']} connected.")


def _error(name: str) -> rx.Component:
    return field_error(SocialAccountsState.errors, name, id=name.replace(".", "-") + "-error")


def _input(
    label: str, name: str, element_id: str, *, kind: str = "text", placeholder: str = ""
) -> rx.Component:
    """An empty field (tokens are never shown again, so never filled in)."""
    return rx.vstack(
        rx.text(label, size="2", weight="medium"),
        rx.input(
            name=name,
            type=kind,
            placeholder=placeholder,
            auto_complete="new-password" if kind == "password" else "off",
            width="100%",
            id=element_id,
        ),
        _error(f"social.{name}"),
        spacing="1",
        width="100%",
    )


def _account(row: AccountRow) -> rx.Component:
    return rx.table.row(
        rx.table.cell(rx.text(row.label, size="2"), class_name="social-platform"),
        rx.table.cell(rx.text(row.shown, weight="medium"), class_name="social-name"),
        rx.table.cell(
            rx.hstack(
                rx.cond(
                    row.problem != "",
                    badge(row.problem, "red", class_name="social-problem"),
                ),
                rx.cond(
                    row.expires_at != "",
                    rx.text(
                        "token expires ",
                        when(row.expires_at),
                        size="1",
                        color_scheme="gray",
                        class_name="social-expires",
                    ),
                ),
                align="center",
                wrap="wrap",
            )
        ),
        rx.table.cell(
            rx.button(
                "Remove",
                size="1",
                variant="soft",
                color_scheme="red",
                class_name="remove-social-account",
                on_click=SocialAccountsState.remove(row.id),
            )
        ),
        id=row.element_id,
        class_name="social-account",
    )


def _sign_in_button(choice: PlatformChoice) -> rx.Component:
    return rx.button(
        "Connect with " + choice.label,
        type="button",
        variant="soft",
        id="connect-" + choice.platform,
        on_click=SocialAccountsState.sign_in(choice.platform),
    )


def _paste_form() -> rx.Component:
    return rx.form(
        rx.el.fieldset(
            rx.vstack(
                rx.hstack(
                    rx.vstack(
                        rx.text("Platform", size="2", weight="medium"),
                        rx.select.root(
                            rx.select.trigger(id="social-platform"),
                            rx.select.content(
                                rx.foreach(
                                    SocialAccountsState.platforms,
                                    lambda p: rx.select.item(p.label, value=p.platform),
                                )
                            ),
                            name="platform",
                            default_value=SocialAccountsState.chosen,
                        ),
                        _error("social.platform"),
                        spacing="1",
                    ),
                    _input("Access token", "access_token", "social-token", kind="password"),
                    width="100%",
                    align="start",
                ),
                rx.hstack(
                    _input(
                        "Refresh token (optional)",
                        "refresh_token",
                        "social-refresh-token",
                        kind="password",
                    ),
                    _input(
                        "Expires in, seconds (optional)",
                        "expires_in",
                        "social-expires-in",
                        kind="number",
                        placeholder="as the platform said",
                    ),
                    width="100%",
                    align="start",
                ),
                _error("social"),
                rx.button("Connect", type="submit", id="connect-social", width="fit-content"),
                width="100%",
            ),
            disabled=SocialAccountsState.reading,
            border="none",
            padding="0",
            margin="0",
            min_width="0",
            width="100%",
        ),
        on_submit=SocialAccountsState.paste,
        key="social-" + SocialAccountsState.loaded.to_string(),
        id="social-paste",
    )


def social_accounts_panel() -> rx.Component:
    """The panel on the profile page."""
    return panel(
        rx.heading("Connected accounts", size="4"),
        rx.text(
            "The posting tools (post_to_twitter, post_to_instagram, post_to_linkedin, "
            "post_to_facebook) post as one of these accounts. Tokens are stored encrypted and "
            "never shown again; removing an account forgets them (its posts stay on the "
            "platform).",
            size="2",
            color_scheme="gray",
        ),
        rx.cond(
            SocialAccountsState.accounts.length() > 0,  # type: ignore[attr-defined]
            rx.table.root(
                rx.table.body(rx.foreach(SocialAccountsState.accounts, _account)),
                width="100%",
                size="1",
            ),
            rx.text("No account is connected yet.", size="2", id="no-social-accounts"),
        ),
        rx.cond(
            SocialAccountsState.sign_ins.length() > 0,  # type: ignore[attr-defined]
            rx.hstack(
                rx.foreach(SocialAccountsState.sign_ins, _sign_in_button),
                wrap="wrap",
                id="social-sign-ins",
            ),
        ),
        rx.text(
            "Or paste an access token the platform gave you: the platform is asked whose it is.",
            size="2",
            color_scheme="gray",
        ),
        _paste_form(),
        id="social-accounts",
    )


def connected_page() -> rx.Component:
    """``/profile/connected``: where the platform's sign-in sends the person back."""
    return frame(
        "Connecting an account",
        panel(
            rx.cond(
                SocialAccountsState.completing,
                rx.hstack(
                    rx.spinner(),
                    rx.text("Connecting the account…", size="2"),
                    align="center",
                    id="social-completing",
                ),
                rx.cond(
                    SocialAccountsState.sign_in_error != "",
                    rx.callout(
                        SocialAccountsState.sign_in_error,
                        icon="triangle_alert",
                        color_scheme="red",
                        id="social-sign-in-error",
                    ),
                ),
            ),
            rx.link("Back to your profile", href="/profile", id="back-to-profile"),
        ),
        current="/profile",
    )
