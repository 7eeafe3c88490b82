"""Reading function calls back from the ways servers write them, and strict schemas."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from troika_shared.catalogue import CATALOGUE
from troika_shared.functions import (
    CallProblem,
    Function,
    calls_in_json,
    calls_in_message,
    json_choice_schema,
    relax,
    strict_parameters,
)


def message(content: str | None = None, tool_calls: list | None = None) -> SimpleNamespace:
    return SimpleNamespace(content=content, tool_calls=tool_calls)


def native(name: str, arguments: object) -> SimpleNamespace:
    return SimpleNamespace(id="c1", function=SimpleNamespace(name=name, arguments=arguments))


@pytest.mark.parametrize(
    "answer",
    [
        message(tool_calls=[native("create_file", '{"path": "a.md", "content": "hi"}')]),
        message(tool_calls=[native("create_file", {"path": "a.md", "content": "hi"})]),
        message(
            '<tool_call>\n{"name": "create_file", "arguments": {"path": "a.md", '
            '"content": "hi"}}\n</tool_call>'
        ),
        message(
            '[TOOL_CALLS][{"name": "create_file", "arguments": {"path": "a.md", "content": "hi"}}]'
        ),
        message(
            '```json\n{"name": "create_file", "arguments": {"path": "a.md", "content": "hi"}}\n```'
        ),
        # cut off before its closing braces: repaired, since nothing is left to guess
        message(tool_calls=[native("create_file", '{"path": "a.md", "content": "hi"')]),
    ],
    ids=["openai", "object-arguments", "hermes", "mistral", "fenced-json", "truncated"],
)
def test_a_call_is_read_in_every_dialect(answer: SimpleNamespace) -> None:
    [call] = calls_in_message(answer)
    assert (call.name, call.arguments) == ("create_file", {"path": "a.md", "content": "hi"})


@pytest.mark.parametrize(
    ("answer", "problem"),
    [
        (message(""), "empty"),
        (message("I will write the file now."), "text, not a function call"),
        (message(tool_calls=[native("create_file", "[1, 2]")]), "not a JSON object"),
        (message(tool_calls=[native("", "{}")]), "names no function"),
    ],
)
def test_an_unreadable_answer_says_what_is_wrong(answer: SimpleNamespace, problem: str) -> None:
    with pytest.raises(CallProblem, match=problem):
        calls_in_message(answer)


def test_several_tagged_calls_are_all_read() -> None:
    text = "".join(
        f'<tool_call>{{"name": "read_file", "arguments": {{"path": "{name}"}}}}</tool_call>'
        for name in ("a.md", "b.md")
    )
    assert [c.arguments["path"] for c in calls_in_message(message(text))] == ["a.md", "b.md"]


def test_a_strict_schema_closes_every_object_and_relax_restores_the_defaults() -> None:
    schema = CATALOGUE["analyze_csv"].spec().parameters
    strict = strict_parameters(schema)
    assert strict is not None
    assert set(strict["required"]) == set(schema["properties"])  # all required…
    limit = strict["properties"]["limit"]
    assert {"type": "null"} in limit["anyOf"]  # …the optional ones nullable
    assert strict["additionalProperties"] is False
    assert all(d["additionalProperties"] is False for d in strict["$defs"].values())
    assert "maxLength" not in str(strict)
    assert "default" not in str(strict)
    answer = {
        "path": "a.csv",
        "filters": [{"column": "x", "op": None, "value": 3}],
        "group_by": None,
        "aggregates": None,
        "sort_by": None,
        "limit": None,
        "save_as": None,
    }
    relaxed = relax(answer, schema)
    assert relaxed == {"path": "a.csv", "filters": [{"column": "x", "value": 3}]}
    CATALOGUE["analyze_csv"].validate(relaxed)  # the tool takes it, with its defaults


def test_a_schema_that_allows_any_value_is_not_made_strict() -> None:
    schema = CATALOGUE["http_request"].spec().parameters  # its JSON body may be anything
    assert strict_parameters(schema) is None
    wire = Function("http_request", "call", schema).wire(strict=True)
    assert "strict" not in wire["function"]


def test_constrained_json_offers_each_function_with_its_own_schema() -> None:
    functions = [
        Function(name, "", CATALOGUE[name].spec().parameters) for name in ("edit_csv", "read_file")
    ]
    schema = json_choice_schema(functions, 3)
    options = schema["properties"]["calls"]["items"]["anyOf"]
    assert [o["properties"]["function"]["const"] for o in options] == ["edit_csv", "read_file"]
    assert schema["properties"]["calls"]["maxItems"] == 3
    refs = str(options[0])
    assert "#/$defs/edit_csv." in refs  # each function's definitions kept apart
    assert all(name.startswith("edit_csv.") for name in schema["$defs"])
    calls = calls_in_json('{"calls": [{"function": "read_file", "arguments": {"path": "a"}}]}')
    assert [(c.name, c.arguments) for c in calls] == [("read_file", {"path": "a"})]
