"""Functions a model may call, and reading its calls back whatever dialect it answers in.

An agent offers the model a set of :class:`Function` objects, each with its own JSON schema, and
gets back :class:`FunctionCall` objects. On the wire this is either native tool calling (one
function per tool, ``tool_choice: required``) or, for servers that only constrain JSON, one
object whose ``calls`` list is a union of the functions (:func:`json_choice_schema`).

Servers differ in how they return calls. :func:`calls_in_message` reads all the common forms:
OpenAI's ``tool_calls`` (arguments as a JSON string, or as an object as some servers send
them), Hermes-style ``<tool_call>…</tool_call>`` blocks and Mistral's ``[TOOL_CALLS]`` in the
text (a server without a tool-call parser), and a bare or fenced JSON object. Truncated or
fenced JSON is repaired with ``json-repair`` where the result is unambiguous; anything still
unreadable is a :class:`CallProblem` the model is told about.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

import json_repair

if TYPE_CHECKING:
    from collections.abc import Sequence

    from pydantic import ValidationError

__all__ = [
    "CallProblem",
    "Function",
    "FunctionCall",
    "calls_in_json",
    "calls_in_message",
    "json_choice_schema",
    "refusal",
    "relax",
    "strict_parameters",
    "validation_problems",
]


@dataclass(frozen=True, slots=True)
class Function:
    """A function the model may call.

    Attributes:
        name: What the model calls it.
        description: What it does, for the model.
        parameters: The JSON schema of its arguments (an object schema).
    """

    name: str
    description: str
    parameters: Mapping[str, Any] = field(default_factory=lambda: {"type": "object"})

    def wire(self, *, strict: bool) -> dict[str, Any]:
        """The function as a chat-completions ``tools`` entry; strict when asked and its schema
        can be made strict (an open-ended value, e.g. any JSON, cannot)."""
        lean = _lean(self.parameters)
        parameters = strict_parameters(lean) if strict else None
        spec: dict[str, Any] = {
            "name": self.name,
            "description": self.description,
            "parameters": parameters or lean,
        }
        if parameters is not None:
            spec["strict"] = True
        return {"type": "function", "function": spec}


def _lean(schema: Mapping[str, Any]) -> dict[str, Any]:
    """``schema`` without what only costs tokens: each part's ``title`` (its name again) and
    the object's own description (the function's, again)."""

    def walk(node: Any, *, names: bool = False) -> Any:  # noqa: ANN401 - a part of a schema
        if isinstance(node, list):
            return [walk(item) for item in node]
        if not isinstance(node, dict):
            return node
        if names:  # the keys are property names, not keywords
            return {key: walk(value) for key, value in node.items()}
        return {
            key: walk(value, names=key in ("properties", "$defs"))
            for key, value in node.items()
            if key != "title"
        }

    lean = walk(dict(schema))
    lean.pop("description", None)
    return cast("dict[str, Any]", lean)


@dataclass(frozen=True, slots=True)
class FunctionCall:
    """A call the model made: the function's name and its arguments."""

    name: str
    arguments: dict[str, Any]
    id: str = ""


class CallProblem(ValueError):
    """The model's answer holds no readable function call."""


# --- strict schemas -----------------------------------------------------------------------

# What strict mode (OpenAI's structured outputs) refuses in a schema; the arguments are still
# validated against the full schema afterwards, so dropping them loses no check.
_NOT_IN_STRICT = frozenset({"default", "title", "minLength", "maxLength", "examples"})


class _Open(Exception):
    """A schema that allows any value, which strict mode cannot express."""


def strict_parameters(schema: Mapping[str, Any]) -> dict[str, Any] | None:
    """``schema`` as strict mode takes it: every object closed and every property required,
    the optional ones nullable; ``None`` when it cannot be (it allows any value somewhere).

    A strict answer holds ``null`` for the optional properties it leaves out: :func:`relax`
    removes them again.
    """
    try:
        return cast("dict[str, Any]", _strict(copy.deepcopy(dict(schema))))
    except _Open:
        return None


def _strict(node: Any) -> Any:  # noqa: ANN401 - any part of a JSON schema
    if not isinstance(node, dict):
        return node
    if not node:
        raise _Open
    node = {key: value for key, value in node.items() if key not in _NOT_IN_STRICT}
    if "oneOf" in node:
        node["anyOf"] = node.pop("oneOf")
    for key in ("anyOf", "allOf", "prefixItems"):
        if key in node:
            node[key] = [_strict(option) for option in node[key]]
    if "items" in node:
        node["items"] = _strict(node["items"])
    if "$defs" in node:
        node["$defs"] = {name: _strict(value) for name, value in node["$defs"].items()}
    if node.get("type") == "object" or "properties" in node:
        if node.get("additionalProperties") not in (None, False):
            raise _Open
        properties = node.get("properties", {})
        required = set(node.get("required", ()))
        node["properties"] = {
            name: _strict(value) if name in required else _nullable(_strict(value))
            for name, value in properties.items()
        }
        node["required"] = list(properties)
        node["additionalProperties"] = False
    return node


def _nullable(node: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [node, {"type": "null"}]}


def relax(arguments: dict[str, Any], schema: Mapping[str, Any]) -> dict[str, Any]:
    """A strict answer's arguments without the ``null`` it had to give for each optional
    property it left out, so that the property's default applies."""
    defs = schema.get("$defs", {})

    def resolve(node: Mapping[str, Any]) -> Mapping[str, Any]:
        ref = node.get("$ref", "")
        return defs.get(ref.rsplit("/", 1)[-1], node) if ref.startswith("#/$defs/") else node

    def walk(value: Any, node: Mapping[str, Any]) -> Any:  # noqa: ANN401 - any JSON value
        node = resolve(node)
        if isinstance(value, dict) and "properties" in node:
            required = set(node.get("required", ()))
            return {
                key: walk(item, node["properties"].get(key, {}))
                for key, item in value.items()
                if item is not None or key in required
            }
        if isinstance(value, list) and isinstance(node.get("items"), dict):
            return [walk(item, node["items"]) for item in value]
        if isinstance(value, dict | list):
            for option in map(resolve, node.get("anyOf", ())):
                if ("properties" in option) == isinstance(value, dict):
                    return walk(value, option)
        return value

    return cast("dict[str, Any]", walk(arguments, schema))


# --- constrained JSON instead of tool calls ------------------------------------------------


def json_choice_schema(functions: Sequence[Function], max_calls: int) -> dict[str, Any]:
    """One JSON object that holds the calls: ``{"calls": [{"function": …, "arguments": …}]}``,
    each call one of the functions with that function's own argument schema."""
    options = [
        {
            "type": "object",
            "properties": {
                "function": {"type": "string", "const": function.name},
                "arguments": _local_refs(function.parameters, function.name),
            },
            "required": ["function", "arguments"],
        }
        for function in functions
    ]
    defs: dict[str, Any] = {}
    for function in functions:
        for name, value in function.parameters.get("$defs", {}).items():
            defs[f"{function.name}.{name}"] = _local_refs(value, function.name)
    schema: dict[str, Any] = {
        "type": "object",
        "properties": {
            "calls": {
                "type": "array",
                "items": {"anyOf": options},
                "minItems": 1,
                "maxItems": max_calls,
            },
        },
        "required": ["calls"],
    }
    if defs:
        schema["$defs"] = defs
    return schema


def _local_refs(node: Any, owner: str) -> Any:  # noqa: ANN401 - any part of a JSON schema
    """``node`` with its ``$defs`` lifted out and its references renamed to ``owner.name``."""
    if isinstance(node, list):
        return [_local_refs(item, owner) for item in node]
    if not isinstance(node, dict):
        return node
    out = {}
    for key, value in node.items():
        if key == "$defs":
            continue
        if key == "$ref" and isinstance(value, str) and value.startswith("#/$defs/"):
            out[key] = f"#/$defs/{owner}.{value.rsplit('/', 1)[-1]}"
        else:
            out[key] = _local_refs(value, owner)
    return out


def calls_in_json(content: str | None) -> list[FunctionCall]:
    """The calls in an answer to :func:`json_choice_schema`.

    Raises:
        CallProblem: It holds no readable calls.
    """
    value = _loads(content or "")
    if isinstance(value, dict) and isinstance(value.get("calls"), list):
        return [_call_of(item, n) for n, item in enumerate(value["calls"])]
    if isinstance(value, dict | list):  # a bare call or list of calls, as some models answer
        return _calls_in_value(value)
    raise CallProblem("the answer is not a JSON object with a list of calls")


# --- reading tool calls -------------------------------------------------------------------

_TAGGED = re.compile(r"<tool_call>\s*(.*?)\s*(?:</tool_call>|$)", re.DOTALL)
_MISTRAL = "[TOOL_CALLS]"


def calls_in_message(message: Any) -> list[FunctionCall]:  # noqa: ANN401 - the SDK's message
    """The function calls in a chat-completions answer's message, in whichever dialect.

    Raises:
        CallProblem: It holds no readable call (plain prose, or JSON beyond repair).
    """
    native = getattr(message, "tool_calls", None) or []
    if native:
        calls = []
        for n, call in enumerate(native):
            function = getattr(call, "function", None)
            name = getattr(function, "name", None)
            if not name:
                raise CallProblem(f"call {n + 1} names no function")
            arguments = _arguments(getattr(function, "arguments", None), name)
            call_id = getattr(call, "id", "") or ""
            calls.append(FunctionCall(name=name, arguments=arguments, id=call_id))
        return calls
    content = (getattr(message, "content", None) or "").strip()
    if not content:
        raise CallProblem("the answer was empty: call one of the functions")
    if tagged := _TAGGED.findall(content):
        return [call for block in tagged for call in _calls_in_value(_loads(block))]
    if _MISTRAL in content:
        content = content.split(_MISTRAL, 1)[1]
    value = _loads(content)
    if isinstance(value, dict | list) and value:
        return _calls_in_value(value)
    raise CallProblem("the answer was text, not a function call: call one of the functions")


def _calls_in_value(value: Any) -> list[FunctionCall]:  # noqa: ANN401 - parsed JSON
    items = value if isinstance(value, list) else [value]
    return [_call_of(item, n) for n, item in enumerate(items)]


def _call_of(item: Any, n: int) -> FunctionCall:  # noqa: ANN401 - parsed JSON
    if not isinstance(item, dict):
        raise CallProblem(f"call {n + 1} is not an object")
    if isinstance(item.get("function"), dict):  # {"type": "function", "function": {…}}
        item = item["function"]
    name = item.get("name") or item.get("function") or item.get("tool")
    if not isinstance(name, str) or not name:
        raise CallProblem(f"call {n + 1} names no function")
    raw = item.get("arguments", item.get("parameters", {}))
    return FunctionCall(name=name, arguments=_arguments(raw, name))


def _arguments(raw: Any, name: str) -> dict[str, Any]:  # noqa: ANN401 - a string or an object
    if raw is None or raw == "":
        return {}
    value = raw if isinstance(raw, dict) else _loads(raw) if isinstance(raw, str) else None
    if not isinstance(value, dict):
        raise CallProblem(f"the arguments of {name} are not a JSON object")
    return value


def _loads(text: str) -> Any:  # noqa: ANN401 - any JSON value
    """JSON, or the unambiguous repair of truncated or fenced JSON; ``""`` for plain text."""
    text = text.strip()
    try:
        return json.loads(text)
    except ValueError:
        pass
    if not text or not any(mark in text for mark in "{["):
        return ""
    return json_repair.loads(text)


def refusal(
    message: Any,  # noqa: ANN401 - the SDK's message
    problems: list[str],
    *,
    json_mode: bool,
) -> list[dict[str, Any]]:
    """What goes back to the model after an answer that was refused: its answer, then why."""
    why = "Not accepted, nothing was run: " + "; ".join(problems) + ". Answer again."
    calls = [] if json_mode else list(getattr(message, "tool_calls", None) or [])
    if calls and all(getattr(call, "id", None) for call in calls):
        answer = {
            "role": "assistant",
            "content": message.content or None,
            "tool_calls": [
                {
                    "id": call.id,
                    "type": "function",
                    "function": {
                        "name": call.function.name,
                        "arguments": call.function.arguments
                        if isinstance(call.function.arguments, str)
                        else json.dumps(call.function.arguments),
                    },
                }
                for call in calls
            ],
        }
        return [answer, *({"role": "tool", "tool_call_id": c.id, "content": why} for c in calls)]
    return [
        {"role": "assistant", "content": getattr(message, "content", None) or ""},
        {"role": "user", "content": why},
    ]


def validation_problems(error: ValidationError, limit: int = 5) -> list[str]:
    """What pydantic found wrong, one plain line per problem (``where: what``), without its
    links and input dumps: what the model is told, and what a person may read."""
    problems = []
    for item in error.errors(include_url=False)[:limit]:
        where = ".".join(map(str, item["loc"])) or "answer"
        problems.append(f"{where}: {item['msg'].removeprefix('Value error, ')}")
    return problems
