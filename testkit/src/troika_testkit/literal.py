"""A literal model: it knows what it wants to do, and says it only through the schemas offered.

It stands for a capable OpenAI-compatible model that follows function schemas to the letter.
What to do comes from a :class:`Playbook` (the subtasks of a plan, and each subtask's calls);
how to say it comes only from the functions in the request: an argument the offered schema
does not have is dropped, a required one it has no value for is filled from the schema (its
first enum value, its minimum, a placeholder text), and optional ones are omitted or filled at
random, as the schema allows — a model that fills an optional field "just because" must not
change what its answer means. Tool schemas are never read from the prompt's prose, so a tool
it is not offered as a function is asked for with ``more_tools``, or not at all.

    LiteralModel(seed=3).learn(playbook).install(llm)
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from troika_testkit.llm import ScriptedLLM

__all__ = ["Call", "LiteralModel", "Playbook", "SubtaskPlay"]

Call = tuple[str, dict[str, Any] | Callable[[str], dict[str, Any]]]
"""A tool and its arguments, or a function from the step's conversation to them (a model that
uses what earlier outputs showed)."""

_SUBTASK = re.compile(r"Your subtask: (\S+) —")
_DONE_CALLS = re.compile(r"^\d+\. \w+\(", re.MULTILINE)


@dataclass(frozen=True)
class SubtaskPlay:
    """One subtask the model plans, and how it carries it out.

    Attributes:
        id: The subtask's id.
        title: Its title.
        hints: The tools it names in the plan (it may name too few).
        calls: The calls it makes, one step each, in order.
        result: Its result, from the step's conversation.
        files: The files it names with the result.
        depends_on: Subtasks that go first.
    """

    id: str
    title: str
    hints: tuple[str, ...]
    calls: tuple[Call, ...]
    result: Callable[[str], str]
    files: tuple[str, ...] = ()
    depends_on: tuple[str, ...] = ()


@dataclass(frozen=True)
class Playbook:
    """What the model does for objectives that contain ``keyword``."""

    keyword: str
    summary: str
    subtasks: tuple[SubtaskPlay, ...]


@dataclass
class LiteralModel:
    """Answers the planner, executor and reviewer by filling the schemas they offer.

    Attributes:
        seed: Seeds the choice of optional fields.
        playbooks: What it knows to do.
    """

    seed: int = 0
    playbooks: list[Playbook] = field(default_factory=list)
    _random: random.Random = field(init=False)

    def __post_init__(self) -> None:
        self._random = random.Random(self.seed)  # noqa: S311 - a repeatable choice, not a secret

    def learn(self, playbook: Playbook) -> LiteralModel:
        """Adds a playbook."""
        self.playbooks.append(playbook)
        return self

    def install(self, llm: ScriptedLLM) -> LiteralModel:
        """Answers every agent request of ``llm``."""
        llm.always("PlanDraft", self._plan)
        llm.always("StepDecision", self._step)
        llm.always("ReviewDecision", self._review)
        return self

    # --- the answers ------------------------------------------------------------------------

    def _plan(self, request: dict[str, Any]) -> dict[str, Any]:
        book = self._playbook(request)
        intent = {
            "decision": "plan",
            "summary": book.summary,
            "subtasks": [
                {
                    "id": play.id,
                    "title": play.title,
                    "description": play.title,
                    "depends_on": list(play.depends_on),
                    "acceptance_criteria": [play.title],
                    "tool_hints": list(play.hints),
                }
                for play in book.subtasks
            ],
        }
        return dict(self._fill(_only_function(request)["parameters"], intent, agent=True))

    def _review(self, request: dict[str, Any]) -> dict[str, Any]:
        intent = {"verdict": "approve", "summary": "Every subtask met its criteria."}
        return dict(self._fill(_only_function(request)["parameters"], intent, agent=True))

    def _step(self, request: dict[str, Any]) -> dict[str, Any]:
        prompt = request["messages"][1]["content"]
        found = _SUBTASK.search(prompt)
        play = next(p for p in self._playbook(request).subtasks if found and p.id == found.group(1))
        offered = {t["function"]["name"]: t["function"] for t in request.get("tools", [])}
        done = len(_DONE_CALLS.findall(prompt))
        if done >= len(play.calls):
            name = "finish"
            intent: dict[str, Any] = {"result": play.result(prompt), "files": list(play.files)}
        else:
            name, arguments = play.calls[done]
            intent = arguments(prompt) if callable(arguments) else arguments
        if name not in offered:
            enum = (
                offered.get("more_tools", {})
                .get("parameters", {})
                .get("properties", {})
                .get("tools", {})
                .get("items", {})
                .get("enum", [])
            )
            if name not in enum:
                name, intent = "stuck", {"reason": f"I need {name}, which I was not offered."}
            else:
                name, intent = "more_tools", {"tools": [name]}
        arguments = self._fill(offered[name]["parameters"], intent, agent=name in _OWN)
        return {"calls": [{"name": name, "arguments": arguments}]}

    def _playbook(self, request: dict[str, Any]) -> Playbook:
        text = " ".join(str(m.get("content") or "") for m in request["messages"])
        for book in self.playbooks:
            if book.keyword in text:
                return book
        raise LookupError("no playbook for this objective")

    # --- filling a schema -------------------------------------------------------------------

    def _fill(self, schema: dict[str, Any], intent: Any, *, agent: bool) -> Any:  # noqa: ANN401
        """``intent`` as ``schema`` lets it be said. ``agent``: optional text fields of an
        agent's own answer may be filled with placeholder text (not a tool's arguments,
        whose optional fields change what the tool does)."""
        return _Filler(schema.get("$defs", {}), self._random, agent).value(schema, intent)


_OWN = frozenset({"finish", "stuck", "more_tools"})
_MISSING = object()


class _Filler:
    def __init__(self, defs: dict[str, Any], rng: random.Random, agent: bool) -> None:  # noqa: FBT001
        self.defs = defs
        self.random = rng
        self.agent = agent

    def resolve(self, schema: dict[str, Any]) -> dict[str, Any]:
        ref = schema.get("$ref", "")
        return dict(self.defs.get(ref.rsplit("/", 1)[-1], schema)) if ref else schema

    def value(self, schema: dict[str, Any], intent: Any = _MISSING) -> Any:  # noqa: ANN401, PLR0911
        schema = self.resolve(schema)
        options = schema.get("anyOf") or schema.get("oneOf")
        if options:
            usable = [o for o in options if self.resolve(o).get("type") != "null"]
            return self.value(usable[0] if usable else options[0], intent)
        kind = schema.get("type")
        if kind == "object" or "properties" in schema:
            return self.object(schema, intent if isinstance(intent, dict) else {})
        if intent is not _MISSING:
            if kind == "array" and isinstance(intent, list):
                items = schema.get("items", {})
                return [self.value(items, item) for item in intent]
            return intent
        if "enum" in schema:
            return schema["enum"][0]
        if "const" in schema:
            return schema["const"]
        if kind == "string":
            return "n/a".ljust(int(schema.get("minLength", 0)), ".")
        if kind in ("integer", "number"):
            return schema.get("minimum", schema.get("exclusiveMinimum", -1) + 1)
        if kind == "boolean":
            return False
        if kind == "array":
            return [self.value(schema.get("items", {})) for _ in range(schema.get("minItems", 0))]
        return None

    def object(self, schema: dict[str, Any], intent: dict[str, Any]) -> dict[str, Any]:
        required = set(schema.get("required", ()))
        out = {}
        for name, prop in schema.get("properties", {}).items():
            if name in intent:
                out[name] = self.value(prop, intent[name])
            elif name in required or (self.agent and self.random.random() < 0.5):
                out[name] = self.value(prop)
        return out


def _only_function(request: dict[str, Any]) -> dict[str, Any]:
    tools = request.get("tools") or []
    if tools:
        return dict(tools[0]["function"])
    schema = request["response_format"]["json_schema"]
    return {"name": schema["name"], "parameters": schema["schema"]}
