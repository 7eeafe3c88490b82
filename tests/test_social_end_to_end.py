"""A post to X end to end: the agent drafts it with an image the person uploaded, the person
changes the text on the approval form, and what the platform receives is the person's version,
once — a redelivered call does not post again."""

from __future__ import annotations

import json
import re
import sqlite3

import httpx
import msgspec
import pytest

from troika_shared.messages import ToolExecute, derive_id
from troika_shared.subjects import StreamKey
from troika_testkit import wait_for
from troika_testkit.agents import plan_answer
from troika_testkit.streams import stored

from .test_pipeline import sign_in

pytestmark = pytest.mark.slow

BANNER = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + b"\x01" * 40
DRAFT = "Troika is out today: plan, approve, done. https://example.com/troika"
EDITED = "Troika is out today 🎉 plan, approve, done. https://example.com/troika"


@pytest.fixture
def stack_env(platforms) -> dict[str, str]:
    return {"TROIKA_TWITTER_API_URL": platforms.base("x")}


def step_script(request: dict) -> dict:
    prompt = request["messages"][1]["content"]
    if not re.search(r"<<<DATA output \d+>>>", prompt):
        return {"action": "use_tools", "tool_calls": [{"tool": "post_to_twitter", "arguments": {
            "text": DRAFT, "images": ["banner.png"]}}]}  # fmt: skip
    posted = re.search(r"https://x\.com/\S+", prompt)
    return {"action": "finish", "result": f"Posted: {posted.group(0) if posted else '?'}"}


async def test_the_post_the_person_approved_is_the_one_published_once(
    stack, scripted_llm, platforms, bus, tmp_path
) -> None:
    scripted_llm.reply("PlanDraft", plan_answer(("announce", [], ["post_to_twitter"])))
    scripted_llm.always("StepDecision", step_script)
    scripted_llm.always("ReviewDecision", {"verdict": "approve", "summary": "Posted."})
    ada = platforms.add_x_user(username="ada_writes")

    async with httpx.AsyncClient(base_url=stack.url, timeout=15) as http:
        headers = await sign_in(http)
        token = {"platform": "twitter", "access_token": ada.access_token}
        connected = await http.post("/social/accounts", headers=headers, json=token)
        assert connected.status_code == 201, connected.text
        made = await http.post(
            "/tasks/with-files", headers=headers,
            data={"task": json.dumps({"objective": "Announce the launch on X with the banner"})},
            files={"files": ("banner.png", BANNER, "image/png")},
        )  # fmt: skip
        assert made.status_code == 201, made.text
        task_id = made.json()["id"]

        async def form() -> list[dict]:
            return (await http.get("/interactions/pending", headers=headers)).json()

        await wait_for(form, timeout=60, what="the post's approval form")
        [asked] = await form()
        fields = asked["prompt"]["form"]["properties"]
        assert fields["text"]["default"] == DRAFT
        assert fields["images"]["default"] == ["banner.png"]
        values = {"text": EDITED, "images": ["banner.png"], "account": "@ada_writes"}
        answered = await http.post(f"/interactions/{asked['id']}/respond", headers=headers,
                                   json={"decision": "approve", "values": values})  # fmt: skip
        assert answered.status_code == 200, answered.text

        async def finished() -> bool:
            task = (await http.get(f"/tasks/{task_id}", headers=headers)).json()
            return task["status"] in {"completed", "failed", "needs_guidance"}

        await wait_for(finished, timeout=90, what="the task to finish")
        task = (await http.get(f"/tasks/{task_id}", headers=headers)).json()
        assert task["status"] == "completed", task
        [post] = platforms.posts
        assert post.text == EDITED  # the person's version, not the agent's draft
        assert post.media == [BANNER]
        assert post.url in json.dumps(task)
        events = await http.get(f"/tasks/{task_id}/events", headers=headers)
        assert ada.access_token not in events.text

    # The approved call comes again (the gateway re-sent it after a crash): not posted twice.
    with sqlite3.connect(tmp_path / "troika.db") as db:
        [(payload,)] = db.execute("SELECT payload FROM outbox WHERE kind = 'tool.execute'")
    execute = msgspec.json.decode(payload, type=ToolExecute)
    again = msgspec.structs.replace(execute, id=derive_id(execute.id, "again"))
    assert await bus.publish(again)

    async def handled() -> bool:
        return not await stored(bus, StreamKey.EXECUTOR)

    await wait_for(handled, timeout=30, what="the executor to take the call again")
    assert len(platforms.posts) == 1
    assert [r.path for r in platforms.requests_to("x")].count("/2/tweets") == 1
