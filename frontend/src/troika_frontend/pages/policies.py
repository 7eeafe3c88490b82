"""The profile's tool policies: what happens, in every task, when an agent wants a tool."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import reflex as rx

from troika_client import ApiError
from troika_frontend.components import badge, labelled, panel, stat
from troika_frontend.session import SessionState
from troika_frontend.views import limits_body

__all__ = ["MODE_WORDS", "PoliciesState", "PolicyRow", "policies_panel", "spending_panel"]

MODE_WORDS = {
    "ask": "ask every time",
    "ask_once": "ask once per task",
    "allow": "allow without asking",
    "deny": "never allow",
}
_MODE_OF_WORDS = {words: mode for mode, words in MODE_WORDS.items()}


@dataclass
class PolicyRow:
    """A tool and what happens when an agent wants to use it."""

    tool: str
    description: str
    risk: str
    mode: str
    side_effects: bool
    mode_words: str = ""


class PoliciesState(SessionState):
    """The table of tools and their policies."""

    policies: list[PolicyRow] = []  # noqa: RUF012 - Reflex state vars are declared on the class
    confirm_tool: str = ""
    review_plans: bool = False
    daily_limit: str = ""
    monthly_limit: str = ""
    daily_tokens_limit: str = ""
    monthly_tokens_limit: str = ""
    spent_today: str = "$0.00"
    spent_this_month: str = "$0.00"
    tokens_today: str = "0"
    tokens_this_month: str = "0"
    limit_error: str = ""

    async def _read(self) -> None:
        """Reads every tool's policy, whether plans wait for review, and the person's money
        limits with what their tasks cost (the profile calls it as it loads)."""
        me = await self._api("GET", "/auth/profile")
        self.review_plans = bool(me.get("review_plans"))
        stats = await self._api("GET", "/tasks/stats")
        self.daily_limit = _amount(me.get("daily_budget_usd"))
        self.monthly_limit = _amount(me.get("monthly_budget_usd"))
        self.daily_tokens_limit = _count(me.get("daily_budget_tokens"))
        self.monthly_tokens_limit = _count(me.get("monthly_budget_tokens"))
        self.spent_today = f"${float(stats.get('spent_today_usd', 0.0)):.2f}"
        self.spent_this_month = f"${float(stats.get('spent_this_month_usd', 0.0)):.2f}"
        self.tokens_today = f"{int(stats.get('tokens_today', 0)):,}"
        self.tokens_this_month = f"{int(stats.get('tokens_this_month', 0)):,}"
        self.policies = [
            PolicyRow(
                tool=str(p["tool"]),
                description=str(p.get("description", "")),
                risk=str(p.get("risk", "")),
                mode=str(p.get("mode", "ask")),
                side_effects=bool(p.get("side_effects")),
                mode_words=MODE_WORDS.get(str(p.get("mode", "ask")), "ask every time"),
            )
            for p in await self._api("GET", "/policies")
        ]

    @rx.event
    async def set_policy(self, tool: str, words: str) -> Any:  # noqa: ANN401 - Reflex specs
        """Sets what happens when an agent wants ``tool`` (allowing one that acts outside
        Troika asks first); ``words`` as the menu shows them."""
        row = next((p for p in self.policies if p.tool == tool), None)
        mode = _MODE_OF_WORDS.get(words, words if words in MODE_WORDS else "")
        if row is None or not mode:
            return None
        if mode == "allow" and row.side_effects and self.confirm_tool != tool:
            self.confirm_tool = tool
            return rx.toast.warning(
                f"{tool} acts outside Troika (it sends, posts or changes things). Choose "
                "“allow without asking” again to let every task use it without asking."
            )
        body: dict[str, Any] = {"mode": mode}
        if mode == "allow" and row.side_effects:
            body["confirm"] = True
        self.confirm_tool = ""
        try:
            await self._api("PUT", f"/policies/{tool}", json=body)
        except ApiError as exc:
            return rx.toast.error(exc.message)
        await self._read()
        return rx.toast.success(f"{tool}: {MODE_WORDS[mode]}.")

    @rx.event
    async def set_review_plans(self, checked: bool) -> Any:  # noqa: ANN401, FBT001 - a switch
        """Whether new tasks wait for the person to review their plan (the composer can say
        otherwise for one task)."""
        try:
            await self._api("PUT", "/auth/profile", json={"review_plans": bool(checked)})
        except ApiError as exc:
            return rx.toast.error(exc.message)
        self.review_plans = bool(checked)
        return rx.toast.success(
            "New tasks wait for you to review their plan."
            if checked
            else "New tasks start working as soon as their plan is ready."
        )

    @rx.event
    def set_limit(self, period: str, text: str) -> None:
        """Keeps a limit being typed (``daily`` or ``monthly`` money, ``daily_tokens`` or
        ``monthly_tokens``)."""
        if period in ("daily", "monthly", "daily_tokens", "monthly_tokens"):
            setattr(self, f"{period}_limit", text)
            self.limit_error = ""

    @rx.event
    async def save_limits(self) -> Any:  # noqa: ANN401
        """Sets the person's own daily and monthly limits, money and tokens (empty: none)."""
        body = limits_body({
            period: getattr(self, f"{period}_limit")
            for period in ("daily", "monthly", "daily_tokens", "monthly_tokens")
        })  # fmt: skip
        if isinstance(body, str):
            self.limit_error = body
            return None
        try:
            await self._api("PUT", "/auth/profile", json=body)
        except ApiError as exc:
            self.limit_error = exc.message
            return None
        await self._read()
        return rx.toast.success("Spending limits saved.")

    @rx.event
    async def trust_read_only(self) -> Any:  # noqa: ANN401
        """Lets every tool that only looks (risk "read") run without asking; the others keep
        their policy (every tool asks unless told otherwise)."""
        trusted = [p.tool for p in self.policies if p.risk == "read" and not p.side_effects]
        try:
            for tool in trusted:
                await self._api("PUT", f"/policies/{tool}", json={"mode": "allow"})
        except ApiError as exc:
            await self._read()
            return rx.toast.error(exc.message)
        await self._read()
        return rx.toast.success(
            f"{len(trusted)} read-only tools now run without asking; the others still ask."
        )


def _amount(value: object) -> str:
    return "" if value is None else f"{float(str(value)):g}"


def _count(value: object) -> str:
    return "" if value is None else f"{int(str(value)):,}"


def spending_panel() -> rx.Component:
    """What the person's tasks cost, and the limits that stop them."""

    def limit(label: str, period: str, value: rx.Var[str]) -> rx.Component:
        return rx.vstack(
            rx.text(label, size="1", color_scheme="gray"),
            rx.input(
                value=value,
                on_change=lambda text: PoliciesState.set_limit(period, text),
                placeholder="no limit",
                width="9em",
                id=f"{period.replace('_', '-')}-limit",
            ),
            spacing="1",
        )

    return panel(
        rx.heading("Spending", size="4"),
        rx.hstack(
            stat("Today", PoliciesState.spent_today, "spent-today"),
            stat("This month", PoliciesState.spent_this_month, "spent-month"),
            stat("Tokens today", PoliciesState.tokens_today, "tokens-today"),
            stat("Tokens this month", PoliciesState.tokens_this_month, "tokens-month"),
            spacing="6",
            wrap="wrap",
        ),
        rx.text(
            "Limits for all your tasks together, in US dollars of estimated model cost and in "
            "model tokens (days and months in UTC). When one is reached, no new task starts "
            "and running ones pause before their next step until you raise it.",
            size="2",
            color_scheme="gray",
        ),
        rx.hstack(
            limit("Dollars a day", "daily", PoliciesState.daily_limit),
            limit("Dollars a month", "monthly", PoliciesState.monthly_limit),
            limit("Tokens a day", "daily_tokens", PoliciesState.daily_tokens_limit),
            limit("Tokens a month", "monthly_tokens", PoliciesState.monthly_tokens_limit),
            rx.button("Save limits", on_click=PoliciesState.save_limits, id="save-limits"),
            align="end",
            wrap="wrap",
        ),
        rx.cond(
            PoliciesState.limit_error != "",
            rx.text(PoliciesState.limit_error, color_scheme="red", size="2", id="limit-error"),
        ),
        id="spending",
    )


def _policy(row: PolicyRow) -> rx.Component:
    return rx.table.row(
        rx.table.cell(rx.code(row.tool)),
        rx.table.cell(
            badge(row.risk, rx.match(row.risk, ("read", "green"), ("write", "amber"), "red"))
        ),
        rx.table.cell(rx.text(row.description, size="1", color_scheme="gray")),
        rx.table.cell(
            rx.select(
                list(MODE_WORDS.values()),
                value=row.mode_words,
                on_change=lambda words: PoliciesState.set_policy(row.tool, words),
                size="1",
                class_name="policy-" + row.tool,
            ),
        ),
    )


def policies_panel() -> rx.Component:
    """The profile's panel of tool policies."""
    return panel(
        rx.hstack(
            rx.heading("Tool policies", size="4"),
            rx.spacer(),
            rx.button(
                rx.icon("eye", size=16),
                "Trust read-only tools",
                variant="soft",
                size="2",
                on_click=PoliciesState.trust_read_only,
                id="trust-read-only",
            ),
            width="100%",
            align="center",
            wrap="wrap",
        ),
        rx.text(
            "What happens when an agent wants a tool, in every task: ask every time (the "
            "default), ask once per task, allow without asking, or never allow. “Trust "
            "read-only tools” allows the ones that only look (search, read a page or a file). A "
            "tool that needs your details (like e-mail) always shows its form.",
            size="2",
            color_scheme="gray",
        ),
        labelled(
            rx.switch(
                checked=PoliciesState.review_plans,
                on_change=PoliciesState.set_review_plans,
                id="review-plans",
            ),
            "Let me review each new task's plan before it runs",
        ),
        rx.table.root(
            rx.table.header(
                rx.table.row(
                    rx.table.column_header_cell("Tool"),
                    rx.table.column_header_cell("Risk"),
                    rx.table.column_header_cell("What it does"),
                    rx.table.column_header_cell("Policy"),
                )
            ),
            rx.table.body(rx.foreach(PoliciesState.policies, _policy)),
            width="100%",
            size="1",
        ),
        id="policies",
    )
