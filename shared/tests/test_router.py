"""Dispatch by message type."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from troika_shared.errors import PermanentError, UnroutableMessage
from troika_shared.messages import Message, PlanProduced, PlanRequested
from troika_shared.router import Router

if TYPE_CHECKING:
    from collections.abc import Sequence


async def test_a_message_reaches_the_handler_of_its_type() -> None:
    router = Router("planner")

    @router.route(PlanRequested)
    async def plan(message: PlanRequested) -> Sequence[Message]:
        return [PlanProduced(correlation_id=message.correlation_id)]

    out = await router.dispatch(PlanRequested(correlation_id="t1", objective="o"))
    assert [(type(o), o.correlation_id) for o in out] == [(PlanProduced, "t1")]
    assert router.message_types == (PlanRequested,)


async def test_a_message_with_no_handler_is_a_permanent_error() -> None:
    router = Router("reviewer")
    with pytest.raises(UnroutableMessage) as caught:
        await router.dispatch(PlanRequested(objective="o"))
    assert isinstance(caught.value, PermanentError)
    assert (caught.value.message_type, caught.value.service) == ("plan.requested", "reviewer")


def test_a_type_cannot_have_two_handlers() -> None:
    router = Router("planner")

    async def handler(message: PlanRequested) -> Sequence[Message]:
        return []

    router.add(PlanRequested, handler)
    with pytest.raises(ValueError, match="already has a handler"):
        router.add(PlanRequested, handler)
