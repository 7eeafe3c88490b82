"""What a model call costs: tokens, estimated before a request, and US dollars after it."""

from __future__ import annotations

import json

__all__ = ["estimate_cost", "estimate_tokens"]

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


def estimate_tokens(*parts: object) -> int:
    """About how many tokens ``parts`` (text, or anything JSON) take in a request."""
    chars = sum(
        len(part) if isinstance(part, str) else len(json.dumps(part, ensure_ascii=False))
        for part in parts
    )
    return -(-chars // _CHARS_PER_TOKEN)
