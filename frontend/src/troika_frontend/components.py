"""Pieces every page uses: the frame with its navigation, badges, and safe Markdown."""

from __future__ import annotations

import reflex as rx
from reflex_components_core.core.banner import has_connection_errors

from troika_frontend.session import SessionState

__all__ = [
    "badge",
    "confirm_button",
    "frame",
    "markdown",
    "nav_link",
    "panel",
    "public_frame",
    "stat",
    "when",
]


def _live_state() -> rx.Component:
    """Whether what the page shows is live: the browser's own connection to the web app first
    (while it is down nothing new arrives, whatever the server hears), then the server's."""
    words = rx.cond(
        has_connection_errors, "Reconnecting…", rx.cond(SessionState.live, "Live", "Connecting…")
    )
    colour = rx.cond(
        has_connection_errors,
        rx.color("amber", 9),
        rx.cond(SessionState.live, rx.color("green", 9), rx.color("gray", 8)),
    )
    return rx.hstack(
        rx.box(width="8px", height="8px", border_radius="50%", background=colour),
        rx.text(words, size="1", color_scheme="gray", id="live-state"),
        align="center",
    )


def when(moment: rx.Var[str], **props: object) -> rx.Component:
    """An ISO time shown as the person's own clock says it: in the browser's time zone."""
    return rx.cond(
        moment != "",
        rx.moment(date=moment, format="YYYY-MM-DD HH:mm:ss", class_name="when", **props),
        rx.fragment(),
    )


def _no_image(*_: object, **__: object) -> rx.Component:
    return rx.fragment()


def _outside_link(*children: object, **props: object) -> rx.Component:
    return rx.link(*children, is_external=True, rel="noopener noreferrer nofollow", **props)


def markdown(text: rx.Var[str] | str, **props: object) -> rx.Component:
    """Agent, tool and web text as Markdown with any HTML in it shown as text, never run.

    Images are left out (a picture's address could carry task data to whoever wrote it into a
    web page the agents read), and links open in a new tab.
    """
    return rx.markdown(
        text,
        use_raw=False,
        class_name="md",
        component_map={"img": _no_image, "a": _outside_link},
        **props,
    )


def badge(text: rx.Var[str] | str, color: rx.Var[str] | str, **props: object) -> rx.Component:
    """A status badge."""
    return rx.badge(text, color_scheme=color, variant="soft", radius="full", **props)  # type: ignore[arg-type]


def page_shot(src: rx.Var[str], caption: str, **props: object) -> rx.Component:
    """A browser page's screenshot (a data: URL) with its caption; nothing while ``src`` is
    empty."""
    return rx.cond(
        src != "",
        rx.el.figure(
            rx.image(
                src=src,
                alt=caption,
                width="auto",
                max_width="100%",
                max_height="420px",
                border="1px solid var(--gray-6)",
                border_radius="6px",
            ),
            rx.el.figcaption(rx.text(caption, size="1", color_scheme="gray")),
            **props,
        ),
    )


def field_error(errors: rx.Var[dict[str, str]], name: str, **props: object) -> rx.Component:
    """The error the last submission left on a form's field, in red under it (nothing when
    there is none); ``errors`` is the page state's field -> message."""
    return rx.cond(
        errors.contains(name),  # type: ignore[attr-defined]
        rx.text(errors[name], color_scheme="red", size="1", class_name="field-error", **props),  # type: ignore[index]
    )


def labelled(
    control: rx.Component, *words: str | rx.Var[str], size: str = "2", spacing: str = "2"
) -> rx.Component:
    """A checkbox or switch with its words in one label: a click on the words toggles it."""
    return rx.text(
        rx.hstack(control, *words, align="center", spacing=spacing),  # type: ignore[arg-type]
        as_="label",
        size=size,  # type: ignore[arg-type]
    )


def stat(name: str, value: rx.Var[str] | rx.Var[int], stat_id: str) -> rx.Component:
    """A figure with its name above it (tokens, cost, what was spent today)."""
    return rx.vstack(
        rx.text(name, size="1", color_scheme="gray"),
        rx.text(value, size="4", weight="bold", id=stat_id),
        spacing="0",
    )


def panel(*children: rx.Component, **props: object) -> rx.Component:
    """A card with room inside."""
    return rx.card(rx.vstack(*children, spacing="3", width="100%"), width="100%", **props)


def nav_link(
    text: str, href: str, icon: str, *extra: rx.Component, active: bool = False
) -> rx.Component:
    """An entry of the side navigation."""
    return rx.link(
        rx.hstack(rx.icon(icon, size=18), rx.text(text, size="3"), *extra, align="center"),
        href=href,
        underline="none",
        color_scheme="indigo" if active else "gray",
        weight="bold" if active else "regular",
        padding_y="0.35em",
    )


LAYOUT_CSS = """
.nav-toggle { display: none !important; }
@media (max-width: 767px) {
  .troika-frame { flex-direction: column !important; }
  .troika-nav {
    width: 100% !important; min-width: 0 !important; height: auto !important;
    position: static !important; padding: 0.75em 1em !important;
    border-right: none !important; border-bottom: 1px solid var(--gray-5);
  }
  .troika-nav .nav-brand { padding-bottom: 0 !important; width: 100%; }
  .troika-nav .nav-body { display: none; }
  .troika-nav.open .nav-body { display: flex; padding-top: 0.75em; }
  .nav-toggle { display: inline-flex !important; margin-left: auto; }
  .troika-content { padding: 1em !important; }
  .troika-content h1 { font-size: var(--font-size-6); }
  .troika-skeleton { flex-direction: column; }
  .troika-skeleton .skeleton-nav { width: 100% !important; height: 3.5em !important; }
}
.troika-skeleton { display: flex; min-height: 100vh; font-family: system-ui, sans-serif; }
.troika-skeleton .skeleton-nav { width: 205px; flex-shrink: 0; background: #f9f9fb;
  border-right: 1px solid #e8e8ec; padding: 1.5em 1em; box-sizing: border-box; }
.troika-skeleton .skeleton-main { flex: 1; padding: 2em; min-width: 0; max-width: 1100px; }
.troika-content .skeleton-main { padding: 0; }
.skeleton-main .bone { background: #ececf0; border-radius: 8px; margin-bottom: 1em;
  animation: troika-pulse 1.4s ease-in-out infinite; }
@keyframes troika-pulse { 50% { opacity: 0.45; } }
@media (prefers-reduced-motion: reduce) { .skeleton-main .bone { animation: none; } }
"""
"""How the pages fit a phone: below 768 px the side navigation becomes a bar on top whose links
open from a menu button, and the content takes the whole width."""


def _bones() -> rx.Component:
    """A page's shape, pulsing, and a word that it loads. Static: drawn before any state."""

    def bone(height: str, width: str = "100%") -> rx.Component:
        return rx.el.div(class_name="bone", style={"height": height, "width": width})

    return rx.el.div(
        rx.el.p("Loading…", role="status", style={"color": "#60646c", "margin": "0 0 1em"}),
        bone("2.2em", "40%"),
        bone("7em"),
        bone("12em"),
        bone("9em"),
        class_name="skeleton-main",
        id="loading-skeleton",
    )


def loading() -> rx.Component:
    """A page that is not drawn in advance, while the app's scripts load: the layout's shape
    instead of a blank page."""
    return rx.el.div(
        rx.el.div(
            rx.el.strong("Troika", style={"font-size": "1.4em", "color": "#3e63dd"}),
            class_name="skeleton-nav",
        ),
        _bones(),
        class_name="troika-skeleton",
    )


def _navigation(current: str) -> rx.Component:
    return rx.vstack(
        rx.hstack(
            rx.icon("triangle", size=26, color=rx.color("indigo", 9)),
            rx.heading("Troika", size="6"),
            rx.icon_button(
                rx.icon("menu", size=18),
                variant="soft",
                color_scheme="gray",
                on_click=SessionState.toggle_navigation,
                class_name="nav-toggle",
                id="nav-toggle",
                aria_label="Menu",
            ),
            align="center",
            padding_bottom="1em",
            class_name="nav-brand",
        ),
        rx.vstack(
            _navigation_body(current),
            spacing="2",
            width="100%",
            height="100%",
            align="start",
            class_name="nav-body",
        ),
        height="100vh",
        position="sticky",
        top="0",
        padding="1.5em",
        width="220px",
        min_width="220px",
        border_right=f"1px solid {rx.color('gray', 5)}",
        background=rx.color("gray", 2),
        align="start",
        class_name=rx.cond(SessionState.navigation_open, "troika-nav open", "troika-nav"),
    )


def _navigation_body(current: str) -> rx.Component:
    return rx.fragment(
        nav_link("Dashboard", "/", "layout-dashboard", active=current == "/"),
        nav_link(
            "Approvals",
            "/approvals",
            "shield-check",
            rx.cond(
                SessionState.pending > 0,
                rx.badge(
                    SessionState.pending, color_scheme="amber", radius="full", id="pending-badge"
                ),
            ),
            active=current == "/approvals",
        ),
        nav_link("History", "/history", "history", active=current == "/history"),
        nav_link("Schedules", "/schedules", "calendar-clock", active=current == "/schedules"),
        nav_link("Profile", "/profile", "user-round", active=current == "/profile"),
        nav_link("How it works", "/how-it-works", "circle-help"),
        rx.spacer(),
        _live_state(),
        rx.text(SessionState.username, size="2", weight="medium", id="signed-in-as"),
        # A tick now and then that restarts the live view if it ended while the tab slept.
        rx.moment(interval=15_000, format="X", on_change=SessionState.keep_live, display="none"),
        rx.button(
            rx.icon("log-out", size=16),
            "Sign out",
            variant="soft",
            color_scheme="gray",
            on_click=SessionState.sign_out,
            id="sign-out",
        ),
    )


def frame(
    title: str | rx.Var[str],
    *children: rx.Component,
    current: str = "",
    actions: rx.Component | None = None,
) -> rx.Component:
    """A signed-in page: navigation on the left, the page's content on the right."""
    header = rx.hstack(
        rx.heading(title, size="7"),
        rx.spacer(),
        actions or rx.fragment(),
        width="100%",
        align="center",
        wrap="wrap",
    )
    return rx.hstack(
        _navigation(current),
        rx.box(
            # Drawn in advance, a page would show its empty state ("no task matches") until the
            # scripts load and read the person's data: its shape shows instead.
            rx.cond(
                rx.State.is_hydrated,
                rx.vstack(header, *children, spacing="5", width="100%", max_width="1100px"),
                _bones(),
            ),
            padding="2em",
            width="100%",
            min_width="0",
            class_name="troika-content",
        ),
        align="start",
        spacing="0",
        width="100%",
        min_height="100vh",
        class_name="troika-frame",
    )


def public_frame(*children: rx.Component, max_width: str = "400px") -> rx.Component:
    """A page for people not signed in (sign in, sign up, how it works)."""
    return rx.center(
        rx.vstack(
            rx.hstack(
                rx.icon("triangle", size=32, color=rx.color("indigo", 9)),
                rx.heading("Troika", size="8"),
                align="center",
            ),
            rx.text(
                "Three agents that plan, do and check your work — with you in charge.",
                color_scheme="gray",
                size="3",
            ),
            *children,
            spacing="4",
            width="100%",
            max_width=max_width,
            padding="1em",
            align="center",
        ),
        min_height="100vh",
        background=rx.color("indigo", 2),
    )


def confirm_button(
    label: str,
    on_confirm: object,
    *,
    title: str,
    description: str,
    color: str = "red",
    **props: object,
) -> rx.Component:
    """A button that asks before it does something that cannot be undone."""
    return rx.alert_dialog.root(
        rx.alert_dialog.trigger(rx.button(label, color_scheme=color, variant="soft", **props)),  # type: ignore[arg-type]
        rx.alert_dialog.content(
            rx.alert_dialog.title(title),
            rx.alert_dialog.description(description),
            rx.hstack(
                rx.alert_dialog.cancel(rx.button("Keep it", variant="soft", color_scheme="gray")),
                rx.alert_dialog.action(
                    rx.button(label, color_scheme=color, on_click=on_confirm)  # type: ignore[arg-type]
                ),
                justify="end",
                spacing="3",
                padding_top="1em",
            ),
        ),
    )
