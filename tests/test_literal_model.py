"""Three everyday objectives with a model that only fills the schemas it is offered: each
completes end to end through the public API, every call approved by the person."""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from troika_testkit.literal import LiteralModel, Playbook, SubtaskPlay
from troika_testkit.ports import free_port

from .test_pipeline import approve_until_final, sign_in

PAGE = """<html><head><title>Message queues</title></head><body><main>
<h1>Message queues</h1>
<p>A message queue lets producers and consumers work at their own pace: messages wait in the
queue until a consumer takes them, and each is acknowledged once handled.</p>
</main></body></html>"""


CITIES = "city,population\nLyon,522250\nNantes,320732\nLille,236710\n"


class _Page(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = PAGE.encode()
        self.send_response(200)
        self.send_header("content-type", "text/html; charset=utf-8")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture(scope="module")
def site():
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), _Page)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def stack_env(site) -> dict[str, str]:
    return {"TROIKA_OUTBOUND_ALLOW_HOSTS": json.dumps([site])}


def output(prompt: str, n: int) -> str:
    found = re.search(rf"<<<DATA output {n}>>>\n(.*?)\n<<<END DATA output {n}>>>", prompt, re.S)
    return found.group(1) if found else ""


def dependency(prompt: str, name: str) -> str:
    found = re.search(rf"<<<DATA result {name}>>>\n(.*?)\n<<<END DATA", prompt, re.S)
    return found.group(1) if found else ""


def playbooks(site: str) -> list[Playbook]:
    research = Playbook(
        "message queues",
        "read the page, then write the summary",
        (
            SubtaskPlay(
                "read",
                "Read the page about message queues",
                ("read_webpage",),
                (("read_webpage", {"url": f"http://{site}/queues.html"}),),
                lambda p: "The page says: " + " ".join(output(p, 1).split())[:600],
            ),
            SubtaskPlay(
                "write",
                "Write the summary to summary.md",
                ("create_file",),
                (
                    (
                        "create_file",
                        lambda p: {
                            "path": "summary.md",
                            "content": "# Message queues\n\n" + dependency(p, "read"),
                        },
                    ),
                ),
                lambda _: "Wrote summary.md",
                files=("summary.md",),
                depends_on=("read",),
            ),
        ),
    )
    cities = Playbook(
        "three cities",
        "write the table, then total it",
        (
            SubtaskPlay(
                "table",
                "Write cities.csv",
                ("create_file",),
                (
                    (
                        "create_file",
                        {
                            "path": "cities.csv",
                            "content": CITIES,
                        },
                    ),
                ),
                lambda _: "Wrote cities.csv",
                files=("cities.csv",),
            ),
            SubtaskPlay(
                "total",
                "Compute the total population",
                ("create_file",),  # too few: analyze_csv is asked for with more_tools
                (
                    (
                        "analyze_csv",
                        {
                            "path": "cities.csv",
                            "aggregates": [{"column": "population", "func": "sum"}],
                        },
                    ),
                ),
                lambda p: "The total population is " + output(p, 1).strip().splitlines()[-1],
                depends_on=("table",),
            ),
        ),
    )
    status = Playbook(
        "status note",
        "draft and save the note",
        (
            SubtaskPlay(
                "note",
                "Draft the status note as status.md",
                ("create_file",),
                (
                    (
                        "create_file",
                        {
                            "path": "status.md",
                            "content": "# Status\n\nThe migration is on track for Friday.\n",
                        },
                    ),
                ),
                lambda _: "Drafted status.md",
                files=("status.md",),
            ),
        ),
    )
    return [research, cities, status]


async def test_three_everyday_objectives_complete_with_a_literal_model(
    stack, scripted_llm, site
) -> None:
    model = LiteralModel(seed=11)
    for book in playbooks(site):
        model.learn(book)
    model.install(scripted_llm)
    objectives = {
        "research": "Research message queues on the page I gave and write a summary to summary.md",
        "cities": "Create a CSV of three cities with their populations and compute the total",
        "status": "Draft a status note for the team about the migration and save it",
    }
    async with httpx.AsyncClient(base_url=stack.url, timeout=15) as http:
        headers = await sign_in(http)
        done = {}
        for name, objective in objectives.items():
            made = await http.post("/tasks", headers=headers, json={"objective": objective})
            assert made.status_code == 201, made.text
            done[name] = await approve_until_final(http, headers, made.json()["id"])
        files = {}
        for name, task in done.items():
            assert task["status"] == "completed", (name, task["status_reason"])
            events = (await http.get(f"/tasks/{task['id']}/events", headers=headers)).json()
            finished = [e for e in events["events"] if e["kind"] == "tool.finished"]
            approved = [e for e in events["events"] if e["kind"] == "tool.approved"]
            assert finished, name
            assert all(e["data"]["ok"] for e in finished), finished
            assert {e["data"]["key"] for e in finished} <= {e["data"]["key"] for e in approved}
            assert all(e["data"]["by"] != "" for e in approved)
            for file in task["files"]:
                got = await http.get(f"/tasks/{task['id']}/files/{file['name']}", headers=headers)
                files[file["name"]] = got.text

    assert "acknowledged once handled" in files["summary.md"]  # what the page said
    total = next(s for s in done["cities"]["subtasks"] if s["key"] == "total")
    assert "1079692" in total["result"].replace(",", "")  # 522250 + 320732 + 236710, summed
    assert files["status.md"].startswith("# Status")
    # The total's subtask named too few tools; it asked for analyze_csv and got it as a function.
    steps = [r for r in scripted_llm.requests if "Your subtask: total —" in str(r["messages"])]
    offered = [{t["function"]["name"] for t in r["tools"]} for r in steps]
    assert "analyze_csv" not in offered[0]
    assert "analyze_csv" in offered[1]
    # The model was never shown a schema in prose: only as functions.
    for request in scripted_llm.requests:
        assert "JSON schema" not in json.dumps(request["messages"])
