"""Words people use for what programs name: the kinds of values validators speak of."""

from __future__ import annotations

__all__ = ["kind", "listed"]

# msgspec's names (str, int, array, …) and JSON Schema's and pydantic's (string, integer, list, …)
_KINDS = {
    "str": "text",
    "string": "text",
    "int": "a whole number",
    "integer": "a whole number",
    "float": "a number",
    "number": "a number",
    "bool": "true or false",
    "boolean": "true or false",
    "array": "a list",
    "list": "a list",
    "object": "an object",
    "dict": "an object",
    "dictionary": "an object",
    "null": "empty",
}


def kind(name: str) -> str:
    """A kind of value as people say it: ``int`` → "a whole number"; unknown names as they are."""
    return _KINDS.get(name, name)


def listed(names: list[str]) -> str:
    """Names as a sentence lists them, each once: "path", "path and content", "a, b and c"."""
    names = list(dict.fromkeys(names))
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
