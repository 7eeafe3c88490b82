"""The web app: every page, each behind the sign-in guard where it needs a session."""

from __future__ import annotations

import reflex as rx

from troika_frontend.components import LAYOUT_CSS, loading
from troika_frontend.headers import security_headers
from troika_frontend.pages.approvals import ApprovalsState, approvals_page
from troika_frontend.pages.auth import AuthState, sign_in_page, sign_up_page
from troika_frontend.pages.dashboard import dashboard_page
from troika_frontend.pages.dashboard_state import DashboardState
from troika_frontend.pages.devices import DevicesState
from troika_frontend.pages.guide import how_it_works_page
from troika_frontend.pages.history import HistoryState, history_page
from troika_frontend.pages.profile import ProfileState, profile_page
from troika_frontend.pages.schedules import SchedulesState, schedules_page
from troika_frontend.pages.social_accounts import (
    CONNECTED_ROUTE,
    SocialAccountsState,
    connected_page,
)
from troika_frontend.pages.task import task_page
from troika_frontend.pages.task_state import TaskState
from troika_frontend.session import SessionState

__all__ = ["app"]

STYLE = {
    ".md p": {"margin": "0.25em 0"},
    ".md pre": {"white_space": "pre-wrap", "word_break": "break-word"},
    ".md code": {"word_break": "break-word"},
}

app = rx.App(
    api_transformer=security_headers,
    hydrate_fallback=loading,  # the page's shape while its scripts load, never a blank page
    style=STYLE,
    head_components=[
        rx.el.meta(name="description", content="Troika: agents that plan, do and check"),
        rx.el.style(LAYOUT_CSS),
    ],
)
guard = SessionState.guard
app.add_page(
    task_page, route="/tasks/[task_id]", title="Task · Troika", on_load=[guard, TaskState.load]
)
app.add_page(dashboard_page, route="/", title="Troika", on_load=[guard, DashboardState.load])
app.add_page(
    approvals_page,
    route="/approvals",
    title="Approvals · Troika",
    on_load=[guard, ApprovalsState.load_all],
)
app.add_page(
    history_page, route="/history", title="History · Troika", on_load=[guard, HistoryState.load]
)
app.add_page(
    schedules_page,
    route="/schedules",
    title="Schedules · Troika",
    on_load=[guard, SchedulesState.load],
)
app.add_page(
    profile_page,
    route="/profile",
    title="Profile · Troika",
    on_load=[guard, ProfileState.load, DevicesState.load, SocialAccountsState.load],
)
app.add_page(
    connected_page,
    route=CONNECTED_ROUTE,
    title="Connecting an account · Troika",
    on_load=[guard, SocialAccountsState.complete_sign_in],
)
app.add_page(how_it_works_page, route="/how-it-works", title="How it works · Troika")
app.add_page(
    sign_in_page, route="/signin", title="Sign in · Troika", on_load=AuthState.already_signed_in
)
app.add_page(
    sign_up_page, route="/signup", title="Sign up · Troika", on_load=AuthState.already_signed_in
)
