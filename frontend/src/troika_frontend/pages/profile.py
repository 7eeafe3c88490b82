"""The person's profile: photo, e-mail, password, tool credentials, PCs and tool policies."""

from __future__ import annotations

import base64
from typing import Any

import reflex as rx

from troika_client import ApiError, field_errors
from troika_frontend.components import badge, field_error, frame, panel
from troika_frontend.pages.devices import devices_panel
from troika_frontend.pages.policies import PoliciesState, policies_panel, spending_panel
from troika_frontend.pages.social_accounts import social_accounts_panel
from troika_frontend.session import SessionState

__all__ = ["ProfileState", "profile_page"]


class ProfileState(SessionState):
    """The profile forms."""

    photo: str = ""
    display: str = ""
    errors: dict[str, str] = {}  # noqa: RUF012 - Reflex state vars are declared on the class
    smtp: dict[str, str] = {}  # noqa: RUF012
    smtp_password_set: bool = False
    loaded: int = 0
    reading: bool = True

    @rx.event
    async def load(self) -> Any:  # noqa: ANN401 - Reflex event specs
        """Reads the profile, the photo, the mail settings (never the password) and policies;
        the forms take no typing meanwhile (they are drawn again with what was read)."""
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
        self.loaded += 1  # the forms are drawn again with what was read
        me = await self._api("GET", "/auth/profile")
        self.display = str(me.get("display_name") or "")
        self.photo = ""
        if me.get("photo_url"):
            data = await self._fetch("/auth/photo")
            kind = _image_type(data)
            self.photo = f"data:{kind};base64,{base64.b64encode(data).decode()}" if kind else ""
        credentials = await self._api("GET", "/credentials")
        smtp = next((c for c in credentials if c.get("kind") == "smtp"), None)
        self.smtp = {k: str(v) for k, v in (smtp or {}).get("settings", {}).items()}
        self.smtp_password_set = bool(smtp and smtp.get("password_set"))
        await (await self.get_state(PoliciesState))._read()

    @rx.event
    async def save_profile(self, form: dict[str, Any]) -> Any:  # noqa: ANN401
        """Changes e-mail, username or display name (e-mail needs the current password)."""
        self.errors = {}
        body = {
            key: str(form[key]).strip()
            for key in ("email", "username", "display_name")
            if str(form.get(key, "")).strip() or key == "display_name"
        }
        if str(form.get("current_password", "")):
            body["current_password"] = str(form["current_password"])
        try:
            await self._api("PUT", "/auth/profile", json=body)
        except ApiError as exc:
            self.errors = field_errors(exc.errors) or {"profile": exc.message}
            return None
        await self._refresh_me()
        return rx.toast.success("Profile saved.")

    @rx.event
    async def change_password(self, form: dict[str, Any]) -> Any:  # noqa: ANN401
        """Sets a new password (other sessions end)."""
        self.errors = {}
        if form.get("new_password") != form.get("repeat_password"):
            self.errors = {"repeat_password": "The two new passwords differ."}
            return None
        body = {
            "current_password": str(form.get("current_password", "")),
            "new_password": str(form.get("new_password", "")),
        }
        try:
            await self._api("PUT", "/auth/password", json=body)
        except ApiError as exc:
            self.errors = field_errors(exc.errors) or {"password": exc.message}
            return None
        return rx.toast.success("Password changed.")

    @rx.event
    async def upload_photo(self, files: list[rx.UploadFile]) -> Any:  # noqa: ANN401
        """Sets the profile photo."""
        if not files:
            return None
        upload = files[0]
        data = await upload.read()
        kind = upload.content_type or "application/octet-stream"
        try:
            await self._api(
                "PUT", "/auth/photo", files=[("photo", (upload.name or "photo", data, kind))]
            )
        except ApiError as exc:
            return rx.toast.error(exc.message)
        await self._load()
        await self._refresh_me()
        return rx.toast.success("Photo saved.")

    @rx.event
    async def remove_photo(self) -> Any:  # noqa: ANN401
        """Removes the profile photo."""
        try:
            await self._api("DELETE", "/auth/photo")
        except ApiError as exc:
            return rx.toast.error(exc.message)
        self.photo = ""
        return rx.toast.success("Photo removed.")

    @rx.event
    async def save_smtp(self, form: dict[str, Any]) -> Any:  # noqa: ANN401
        """Stores the mail server settings; an empty password keeps the stored one."""
        self.errors = {}
        body: dict[str, Any] = {
            "host": str(form.get("host", "")).strip(),
            "from_address": str(form.get("from_address", "")).strip(),
            "security": str(form.get("security") or "starttls"),
            "username": str(form.get("username", "")).strip(),
            "from_name": str(form.get("from_name", "")).strip(),
        }
        try:
            body["port"] = int(str(form.get("port") or "587"))
        except ValueError:
            self.errors = {"smtp.port": "must be a number"}
            return None
        if str(form.get("password", "")):
            body["password"] = str(form["password"])
        try:
            await self._api("PUT", "/credentials/smtp", json=body)
        except ApiError as exc:
            found = field_errors(exc.errors)
            self.errors = {f"smtp.{k}": v for k, v in found.items()} or {"smtp": exc.message}
            return None
        await self._load()
        return rx.toast.success("Mail settings saved.")

    @rx.event
    async def forget_smtp(self) -> Any:  # noqa: ANN401
        """Removes the mail server settings and password."""
        try:
            await self._api("DELETE", "/credentials/smtp")
        except ApiError as exc:
            return rx.toast.error(exc.message)
        await self._load()
        return rx.toast.success("Mail settings removed.")


def _image_type(data: bytes) -> str:
    signatures = {
        b"\x89PNG": "image/png",
        b"\xff\xd8\xff": "image/jpeg",
        b"GIF8": "image/gif",
        b"RIFF": "image/webp",
    }
    return next((kind for head, kind in signatures.items() if data.startswith(head)), "")


def _error(name: str) -> rx.Component:
    return field_error(ProfileState.errors, name)


def _input(
    label: str,
    name: str,
    value: rx.Var[str] | str = "",
    *,
    kind: str = "text",
    placeholder: str = "",
    error: str = "",
) -> rx.Component:
    return rx.vstack(
        rx.text(label, size="2", weight="medium"),
        rx.input(
            name=name,
            default_value=value,
            type=kind,
            placeholder=placeholder,
            width="100%",
            id=(error or name).replace(".", "-"),
        ),
        _error(error or name),
        spacing="1",
        width="100%",
    )


def _photo() -> rx.Component:
    return panel(
        rx.heading("Photo", size="4"),
        rx.hstack(
            rx.avatar(
                src=ProfileState.photo,
                fallback=SessionState.username[:2].upper(),  # type: ignore[index]
                size="7",
                radius="full",
                id="avatar",
            ),
            rx.upload.root(
                rx.button("Choose a photo", variant="soft"),
                id="photo-upload",
                accept={
                    "image/png": [".png"],
                    "image/jpeg": [".jpg", ".jpeg"],
                    "image/gif": [".gif"],
                    "image/webp": [".webp"],
                },
                max_files=1,
                on_drop=ProfileState.upload_photo(rx.upload_files(upload_id="photo-upload")),  # type: ignore[call-arg]
            ),
            rx.cond(
                ProfileState.photo != "",
                rx.button(
                    "Remove", variant="soft", color_scheme="red", on_click=ProfileState.remove_photo
                ),
            ),
            align="center",
            spacing="4",
        ),
    )


def _while_reading(*children: rx.Component) -> rx.Component:
    """A form's fields, disabled while the profile is read: what is typed before the form is
    drawn again with the stored values would be lost."""
    return rx.el.fieldset(
        rx.vstack(*children, width="100%"),
        disabled=ProfileState.reading,
        border="none",
        padding="0",
        margin="0",
        min_width="0",
        width="100%",
    )


def _account() -> rx.Component:
    return panel(
        rx.heading("Account", size="4"),
        rx.form(
            _while_reading(
                _input("E-mail", "email", SessionState.email, kind="email"),
                _input("Username", "username", SessionState.username),
                _input("Display name", "display_name", ProfileState.display),
                _input(
                    "Current password (to change your e-mail)", "current_password", kind="password"
                ),
                _error("profile"),
                rx.button("Save", type="submit", id="save-profile"),
            ),
            on_submit=ProfileState.save_profile,
            key=ProfileState.loaded.to_string(),
        ),
    )


def _password() -> rx.Component:
    return panel(
        rx.heading("Password", size="4"),
        rx.form(
            rx.vstack(
                _input(
                    "Current password",
                    "current_password",
                    kind="password",
                    error="pw.current_password",
                ),
                _input("New password", "new_password", kind="password", error="new_password"),
                _input("New password again", "repeat_password", kind="password"),
                _error("password"),
                rx.button("Change password", type="submit", id="change-password"),
                width="100%",
            ),
            on_submit=ProfileState.change_password,
        ),
    )


def _smtp() -> rx.Component:
    return panel(
        rx.hstack(
            rx.heading("E-mail sending (SMTP)", size="4"),
            rx.cond(
                ProfileState.smtp_password_set,
                badge("password stored", "green", id="smtp-password-state"),
                badge("no password stored", "gray", id="smtp-password-state"),
            ),
            align="center",
        ),
        rx.text(
            "Used by the send_email tool, as your own account. The password is stored "
            "encrypted and never shown again.",
            size="2",
            color_scheme="gray",
        ),
        rx.form(
            _while_reading(
                rx.hstack(
                    _input(
                        "Server",
                        "host",
                        ProfileState.smtp.get("host", ""),
                        placeholder="smtp.example.com",
                        error="smtp.host",
                    ),
                    _input(
                        "Port",
                        "port",
                        ProfileState.smtp.get("port", "587"),
                        kind="number",
                        error="smtp.port",
                    ),
                    width="100%",
                ),
                rx.vstack(
                    rx.text("Security", size="2", weight="medium"),
                    rx.select(
                        ["starttls", "tls", "none"],
                        name="security",
                        id="smtp-security",
                        default_value=ProfileState.smtp.get("security", "starttls"),
                    ),
                    spacing="1",
                ),
                _input(
                    "Username",
                    "username",
                    ProfileState.smtp.get("username", ""),
                    error="smtp.username",
                ),
                _input(
                    "Password",
                    "password",
                    kind="password",
                    placeholder=rx.cond(
                        ProfileState.smtp_password_set,  # type: ignore[arg-type]
                        "leave empty to keep the stored one",
                        "",
                    ),
                    error="smtp.password",
                ),
                _input(
                    "From address",
                    "from_address",
                    ProfileState.smtp.get("from_address", ""),
                    kind="email",
                    error="smtp.from_address",
                ),
                _input(
                    "From name",
                    "from_name",
                    ProfileState.smtp.get("from_name", ""),
                    error="smtp.from_name",
                ),
                _error("smtp"),
                rx.hstack(
                    rx.button("Save mail settings", type="submit", id="save-smtp"),
                    rx.button(
                        "Remove",
                        type="button",
                        variant="soft",
                        color_scheme="red",
                        on_click=ProfileState.forget_smtp,
                    ),
                ),
            ),
            on_submit=ProfileState.save_smtp,
            key="smtp-" + ProfileState.loaded.to_string(),
        ),
        id="smtp",
    )


def profile_page() -> rx.Component:
    """``/profile``."""
    return frame(
        "Profile",
        rx.grid(
            _photo(),
            _account(),
            _password(),
            _smtp(),
            columns=rx.breakpoints(initial="1", md="2"),
            spacing="4",
            width="100%",
        ),
        social_accounts_panel(),
        devices_panel(),
        spending_panel(),
        policies_panel(),
        current="/profile",
    )
