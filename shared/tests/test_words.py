"""Words for what programs name."""

from __future__ import annotations

from troika_shared.words import kind, listed


def test_kinds_of_values_read_the_same_whichever_validator_named_them() -> None:
    assert kind("int") == kind("integer") == "a whole number"
    assert kind("str") == kind("string") == "text"
    assert kind("array") == kind("list") == "a list"
    assert kind("Decimal") == "Decimal"  # a name nobody translated stays as it is


def test_names_are_listed_as_a_sentence_lists_them_once_each() -> None:
    assert listed(["path"]) == "path"
    assert listed(["path", "content", "path"]) == "path and content"
    assert listed(["to", "subject", "body"]) == "to, subject and body"
