"""A post is checked against its platform's rules when proposed: too long goes back to the
agent with the count and the limit, never cut."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from troika_shared.catalogue import CATALOGUE
from troika_shared.social import (
    FacebookPostArgs,
    InstagramPostArgs,
    LinkedInPostArgs,
    TwitterPostArgs,
    x_length,
)


def _problem(model: type, **arguments: object) -> str:
    with pytest.raises(ValidationError) as caught:
        model.model_validate(arguments)
    return "; ".join(error["msg"] for error in caught.value.errors())


def test_x_counts_links_as_23_and_wide_characters_as_2() -> None:
    assert x_length("hello") == 5
    assert x_length("see https://example.com/" + "a" * 200 + " now") == len("see ") + 23 + 4
    assert x_length("日本語") == 6
    assert x_length("café") == 4  # the same whether the accent is composed or not
    assert x_length("cafe\u0301") == 4


def test_a_post_too_long_for_x_is_refused_with_its_count_and_never_cut() -> None:
    TwitterPostArgs(text="x" * 280)
    problem = _problem(TwitterPostArgs, text="x" * 281)
    assert "281 characters" in problem
    assert "allows 280" in problem
    assert "nothing is cut" in problem
    # 140 wide characters fit; 141 do not.
    TwitterPostArgs(text="語" * 140)
    assert "282 characters as X counts it" in _problem(TwitterPostArgs, text="語" * 141)


def test_each_platform_has_its_own_limits() -> None:
    assert "allows 3000" in _problem(LinkedInPostArgs, text="a" * 3001)
    assert "allows 2200" in _problem(InstagramPostArgs, caption="a" * 2201, images=["a.jpg"])
    tags = " ".join(f"#t{n}" for n in range(31))
    assert "30 hashtags" in _problem(InstagramPostArgs, caption=tags, images=["a.jpg"])
    assert "at least 1 item" in _problem(InstagramPostArgs, caption="hi", images=[])
    assert "JPG, JPEG images" in _problem(InstagramPostArgs, images=["cat.png"])
    five = [f"{n}.png" for n in range(5)]
    assert "at most 4" in _problem(TwitterPostArgs, text="hi", images=five)
    assert "folder only" in _problem(TwitterPostArgs, text="hi", images=["https://e.com/a.png"])
    assert "needs a text, a link or an image" in _problem(FacebookPostArgs)
    assert "not both" in _problem(
        FacebookPostArgs, text="hi", link="https://example.com", images=["a.png"]
    )
    FacebookPostArgs(text="hi", images=["https://example.com/a.jpg", "local.png"])


def test_every_post_always_asks_with_the_whole_post_on_the_form() -> None:
    for name, fields in (
        ("post_to_twitter", {"text", "images", "reply_to", "account"}),
        ("post_to_instagram", {"caption", "images", "account"}),
        ("post_to_linkedin", {"text", "image", "image_alt", "organization", "account"}),
        ("post_to_facebook", {"text", "link", "images", "account"}),
    ):
        definition = CATALOGUE[name]
        assert definition.risk == "external"
        assert definition.irreversible
        assert definition.always_asks({"text": "hi"})
        form = definition.form({"text": "Hello", "account": "@ada"})
        assert set(form["properties"]) == fields
        assert form["properties"]["account"]["default"] == "@ada"
