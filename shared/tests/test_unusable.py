"""An unusable answer's reason, as a person reads it."""

from __future__ import annotations

import pytest

from troika_shared.unusable import in_words

NOT_USABLE = "the model's answer was not usable: "


@pytest.mark.parametrize(
    ("reason", "words"),
    [
        (
            NOT_USABLE + "invalid arguments for create_file: path: Field required; "
            "content: Field required",
            "it proposed a create_file call without its path and content",
        ),
        (
            NOT_USABLE + "invalid arguments for read_csv: path: Input should be a valid string",
            "it proposed a read_csv call with a wrong path (not text)",
        ),
        (
            NOT_USABLE + "there is no function 'launch_rocket'; use one of ['finish', 'stuck']",
            "it asked for a tool that does not exist (launch_rocket)",
        ),
        (NOT_USABLE + "call one of the functions", "it answered without choosing anything to do"),
        (
            NOT_USABLE + "the answer was empty: call one of the functions",
            "it answered without choosing anything to do",
        ),
        (
            NOT_USABLE + "the answer was text, not a function call: call one of the functions",
            "it answered in prose",
        ),
        (
            NOT_USABLE + "finish must be the only call of its answer",
            "it called finish together with other calls in one answer",
        ),
        (
            NOT_USABLE + "at most 8 tool calls at a time",
            "it proposed more than 8 tool calls at once",
        ),
        (
            "the model's answer was cut off at 1024 tokens",
            "its answer was cut off at 1024 tokens",
        ),
        (
            "the model endpoint refused the request (400): Error code: 400 - {'error': 'bad'}",
            "the model's server refused the request (HTTP 400)",
        ),
        (NOT_USABLE + "subtasks.0.title: Field required", "its answer left out the title"),
        (
            NOT_USABLE + "verdict: Input should be 'approve' or 'revise'",
            "its answer had a wrong verdict",
        ),
        ("something nobody planned for", "its answer did not have the form that was asked for"),
    ],
)
def test_each_kind_of_unusable_answer_has_its_sentence(reason: str, words: str) -> None:
    assert in_words(reason) == words


def test_the_sentence_holds_no_jargon_of_the_validators() -> None:
    raw = (
        NOT_USABLE + "invalid arguments for send_email: to: Field required; subject: Field required"
    )
    said = in_words(raw)
    assert "Field required" not in said
    assert "invalid arguments" not in said
    assert said == "it proposed a send_email call without its to and subject"
