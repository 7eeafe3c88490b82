"""What a model call costs: tokens, estimated before a request, and US dollars after it."""

from __future__ import annotations

import json

__all__ = ["IMAGE_TOKENS", "estimate_cost", "estimate_tokens"]

# US dollars per million tokens (input, output): published list prices, for estimates only.
_PRICES: dict[str, tuple[float, float]] = {
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-4o": (2.50, 10.00),
    "gpt-4.1": (2.00, 8.00),
    "gpt-4.1-mini": (0.40, 1.60),
    "gpt-4.1-nano": (0.10, 0.40),
    "o4-mini": (1.10, 4.40),
}


def estimate_cost(model: str, prompt_tokens: int, completion_tokens: int) -> float:
    """The estimated price of a call in US dollars (0 for models without a known price)."""
    key = next(
        (name for name in sorted(_PRICES, key=len, reverse=True) if model.startswith(name)), None
    )
    if key is None:
        return 0.0
    prompt_price, completion_price = _PRICES[key]
    return (prompt_tokens * prompt_price + completion_tokens * completion_price) / 1_000_000


# Chat templates, role markers and schemas tokenize worse than prose: about three characters
# a token is a safe side of every common tokenizer.
_CHARS_PER_TOKEN = 3


IMAGE_TOKENS = 1100
"""What one screenshot in a request counts for: a 1024 by 768 image at high detail is about 765
tokens with OpenAI's tiling, more with other servers' encoders."""


def _without_images(part: object) -> tuple[object, int]:
    """``part`` with its ``image_url`` parts left out (their base64 data is not what the model
    reads), and how many there were."""
    if isinstance(part, dict):
        if part.get("type") == "image_url":
            return None, 1
        kept, images = {}, 0
        for key, value in part.items():
            kept[key], seen = _without_images(value)
            images += seen
        return kept, images
    if isinstance(part, (list, tuple)):
        items, images = [], 0
        for value in part:
            item, seen = _without_images(value)
            items.append(item)
            images += seen
        return items, images
    return part, 0


def estimate_tokens(*parts: object) -> int:
    """About how many tokens ``parts`` (text, or anything JSON, images included) take in a
    request."""
    chars = images = 0
    for part in parts:
        if isinstance(part, str):
            chars += len(part)
            continue
        kept, seen = _without_images(part)
        chars += len(json.dumps(kept, ensure_ascii=False))
        images += seen
    return -(-chars // _CHARS_PER_TOKEN) + images * IMAGE_TOKENS
