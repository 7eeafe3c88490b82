"""The plan drawn as a graph: rows by what waits for what, states as colours, text escaped."""

from __future__ import annotations

from xml.etree import ElementTree

from troika_frontend.plan_graph import depths, plan_svg
from troika_frontend.views import step_of

SVG = "{http://www.w3.org/2000/svg}"


def _parsed(svg: str) -> ElementTree.Element:
    """The picture as XML (our own output, made in the test)."""
    return ElementTree.fromstring(svg)  # noqa: S314 - not untrusted input


def _steps(*rows: tuple[str, list[str], str]) -> list:
    return [
        step_of({"key": key, "title": f"Do {key}", "depends_on": after, "status": status})
        for key, after, status in rows
    ]


def test_each_subtask_is_drawn_below_the_ones_it_waits_for() -> None:
    assert depths({"a": [], "b": ["a"], "c": ["a"], "d": ["b", "c"], "e": []}) == {
        "a": 0,
        "b": 1,
        "c": 1,
        "d": 2,
        "e": 0,
    }
    # a circle or a name that is not in the plan does not hang or break the drawing
    assert depths({"a": ["b"], "b": ["a"], "c": ["ghost"]}) == {"a": 1, "b": 0, "c": 0}


def test_the_graph_has_a_box_per_subtask_in_its_state_and_an_arrow_per_dependency() -> None:
    steps = _steps(("gather", [], "done"), ("check", ["gather"], "running"),
                   ("write", ["gather", "check"], "pending"))  # fmt: skip
    root = _parsed(plan_svg(steps))
    nodes = root.findall(f"{SVG}g")
    assert [(n.get("data-key"), n.get("data-status")) for n in nodes] == [
        ("gather", "done"),
        ("check", "running"),
        ("write", "pending"),
    ]
    assert len(root.findall(f"{SVG}path")) == 3
    tops = {n.get("data-key"): float(n.find(f"{SVG}rect").get("y")) for n in nodes}
    assert tops["gather"] < tops["check"] < tops["write"]
    fills = {n.get("data-key"): n.find(f"{SVG}rect").get("stroke") for n in nodes}
    assert len(set(fills.values())) == 3, "each state has its colour"


def test_titles_are_text_in_the_picture_never_markup() -> None:
    hostile = '</text><script>alert(1)</script>"&'
    step = step_of({"key": 'x"y', "title": hostile, "status": "pending"})
    svg = plan_svg([step])
    root = _parsed(svg)  # still one well-formed picture
    assert "<script>" not in svg
    assert root.find(f"{SVG}g/{SVG}title").text.startswith(hostile)
    assert root.find(f"{SVG}g").get("data-key") == 'x"y'
    assert plan_svg([]) == ""


def test_a_paused_task_shows_its_unfinished_subtasks_paused() -> None:
    steps = [step_of({"key": "a", "title": "A", "status": "running"}, "needs_guidance")]
    root = _parsed(plan_svg(steps))
    assert root.find(f"{SVG}g").get("data-status") == "paused"
