"""Sign in and sign up."""

from __future__ import annotations

from typing import Any

import reflex as rx

from troika_client import ApiError, field_errors
from troika_frontend.components import panel, public_frame
from troika_frontend.session import SessionState, gateway_call, local_path
from troika_frontend.views import sentence

__all__ = ["AuthState", "sign_in_page", "sign_up_page"]


class AuthState(SessionState):
    """The sign-in and sign-up forms."""

    error: str = ""
    errors: dict[str, str] = {}  # noqa: RUF012 - Reflex state vars are declared on the class
    busy: bool = False

    @rx.event
    def already_signed_in(self) -> Any:  # noqa: ANN401 - Reflex event specs
        """A kept session skips the forms."""
        self.error, self.errors = "", {}
        return rx.redirect(self._next()) if self.access_token else None

    def _next(self) -> str:
        """The page that sent the person here to sign in (``/`` when none, or one elsewhere)."""
        return local_path(str(self.router.url.query_parameters.get("next", "/")))

    @rx.event
    async def sign_in(self, form: dict[str, Any]) -> Any:  # noqa: ANN401
        """Signs in with a username or e-mail and a password."""
        self.error, self.errors = "", {}
        login, password = str(form.get("login", "")).strip(), str(form.get("password", ""))
        if not login or not password:
            self.error = "Enter your username (or e-mail) and your password."
            return
        self.busy = True
        yield
        try:
            tokens = await gateway_call(
                "POST",
                "/auth/login",
                json={"login": login, "password": password},
                headers=self._client(),
            )
        except ApiError as exc:
            self.busy = False
            self.error = (
                "Wrong username or password." if exc.status in (400, 401, 422) else exc.message
            )
            return
        self.busy = False
        self._use_tokens(tokens)
        yield rx.redirect(self._next())

    @rx.event
    async def sign_up(self, form: dict[str, Any]) -> Any:  # noqa: ANN401
        """Creates the account, then signs in."""
        self.error, self.errors = "", {}
        body = {
            "email": str(form.get("email", "")).strip(),
            "username": str(form.get("username", "")).strip(),
            "password": str(form.get("password", "")),
        }
        self.errors = {name: _EMPTY[name] for name, value in body.items() if not value}
        if body["password"] != str(form.get("confirm", "")):
            self.errors["confirm"] = "The two passwords differ."
        if self.errors:
            return
        self.busy = True
        yield
        try:
            await gateway_call("POST", "/auth/register", json=body, headers=self._client())
            tokens = await gateway_call(
                "POST",
                "/auth/login",
                json={"login": body["username"], "password": body["password"]},
                headers=self._client(),
            )
        except ApiError as exc:
            self.busy = False
            self.errors = {
                name: _HINTS.get((name, said), sentence(said))
                for name, said in field_errors(exc.errors).items()
            }
            self.error = exc.detail if not self.errors else "Please correct the marked fields."
            return
        self.busy = False
        self._use_tokens(tokens)
        yield rx.redirect("/")


_EMPTY = {
    "email": "Enter your e-mail address.",
    "username": "Choose a username.",
    "password": "Choose a password.",
}
_HINTS = {
    ("email", "is not in the expected form"): "Enter an e-mail address like ada@example.com.",
    ("username", "is not in the expected form"): (
        "Use letters, digits, '_', '.' or '-', starting with a letter or digit."
    ),
}


def _field(label: str, name: str, kind: str = "text", placeholder: str = "") -> rx.Component:
    return rx.vstack(
        rx.text(label, size="2", weight="medium"),
        rx.input(name=name, id=name, type=kind, placeholder=placeholder, width="100%", size="3"),
        rx.cond(
            AuthState.errors.contains(name),
            rx.text(AuthState.errors[name], color_scheme="red", size="1", class_name="field-error"),
        ),
        spacing="1",
        width="100%",
    )


def _error() -> rx.Component:
    return rx.cond(
        AuthState.error != "",
        rx.callout(
            AuthState.error,
            icon="triangle-alert",
            color_scheme="red",
            width="100%",
            id="form-error",
        ),
    )


def sign_in_page() -> rx.Component:
    """``/signin``."""
    return public_frame(
        panel(
            rx.heading("Sign in", size="5"),
            _error(),
            rx.form(
                rx.vstack(
                    _field("Username or e-mail", "login"),
                    _field("Password", "password", "password"),
                    rx.button(
                        "Sign in",
                        type="submit",
                        width="100%",
                        size="3",
                        loading=AuthState.busy,
                        id="submit",
                    ),
                    spacing="3",
                ),
                on_submit=AuthState.sign_in,
            ),
            rx.text(
                "New here? ",
                rx.link("Create an account", href="/signup"),
                " or see ",
                rx.link("how it works", href="/how-it-works", id="how-it-works-link"),
                ".",
                size="2",
            ),
        )
    )


def sign_up_page() -> rx.Component:
    """``/signup``."""
    return public_frame(
        panel(
            rx.heading("Create your account", size="5"),
            _error(),
            rx.form(
                rx.vstack(
                    _field("E-mail", "email", "email", "you@example.com"),
                    _field("Username", "username"),
                    _field("Password", "password", "password", "at least 10 characters"),
                    _field("Password again", "confirm", "password"),
                    rx.button(
                        "Create account",
                        type="submit",
                        width="100%",
                        size="3",
                        loading=AuthState.busy,
                        id="submit",
                    ),
                    spacing="3",
                ),
                on_submit=AuthState.sign_up,
            ),
            rx.text("Have an account? ", rx.link("Sign in", href="/signin"), size="2"),
        )
    )
