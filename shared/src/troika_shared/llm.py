"""The language-model client every agent uses: any OpenAI-compatible endpoint, structured answers.

Two kinds of answer. :meth:`LLM.complete` returns one pydantic model (the planner's plan, the
reviewer's verdict), obtained with ``instructor``: the model must call one function whose
arguments are the answer. :meth:`LLM.choose` offers several functions, each with its own
argument schema (the executor's tools, ``finish`` and ``stuck``), and returns the calls the
model makes: native tool calls, or JSON constrained to those functions for servers that only
constrain JSON (see :mod:`troika_shared.functions`). Either way an answer that fails validation
is sent back once with the errors for another try.

Before a request goes out it is measured against the model's context (when the context is
known): one that cannot fit is refused as :class:`ContextTooSmall`, a plain configuration
problem, never as the model's bad answer; the same holds when the server refuses it for its
size. Transient failures (rate limits, 5xx, timeouts, connection
errors) are retried with back-off by the ``openai`` client and, when they persist, raised as
:class:`~troika_shared.errors.DependencyUnavailable`, so the bus redelivers the message later.
Every call reports its :class:`~troika_shared.messages.Usage`: model, tokens, latency and an
estimated cost.
"""

from __future__ import annotations

import re
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, Literal, Protocol, TypeVar

from pydantic import AliasChoices, BaseModel, Field, SecretStr, ValidationInfo

from troika_shared.costs import estimate_cost, estimate_tokens
from troika_shared.errors import PermanentError
from troika_shared.functions import Function, FunctionCall
from troika_shared.messages import Usage
from troika_shared.settings import TroikaSettings

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping, Sequence

__all__ = [
    "LLM",
    "Choice",
    "Completion",
    "ContextTooSmall",
    "LlmSettings",
    "UnusableAnswer",
    "answer_context",
    "checked_against",
    "estimate_cost",
    "estimate_tokens",
    "fence",
    "sees_images",
]

T = TypeVar("T", bound=BaseModel)

# What the answer being validated is checked against. instructor would take it as `context=`,
# but then renders every message of the conversation as a Jinja template and dedents it: text
# from a page or a file that holds `{{`, `{%` or indented code would reach the model altered
# (or fail to render), and every message would be compiled as a template on every call.
_ANSWER_CONTEXT: ContextVar[Mapping[str, Any] | None] = ContextVar("answer_context", default=None)


def answer_context(info: ValidationInfo) -> Mapping[str, Any]:
    """What a response model's validators check an answer against: the ``context`` given to
    :meth:`LLM.complete` (or pydantic's own, when a model is validated directly)."""
    return info.context or _ANSWER_CONTEXT.get() or {}


@contextmanager
def checked_against(context: Mapping[str, Any] | None) -> Iterator[None]:
    """Within it, :func:`answer_context` gives ``context`` (what a client sets while the
    answers of one call are validated)."""
    token = _ANSWER_CONTEXT.set(context)
    try:
        yield
    finally:
        _ANSWER_CONTEXT.reset(token)


class LlmSettings(TroikaSettings):
    """Which model the agents use and how to reach it.

    Attributes:
        llm_provider: ``openai`` (any OpenAI-compatible endpoint), ``local`` (an embedded
            llama.cpp server that ``troika up`` starts; small models plan poorly) or ``auto``
            (``troika up`` serves the local model when no endpoint or key is configured).
        llm_mode: How answers are asked for: ``tools`` (a function call; OpenAI and most
            servers) or ``json_schema`` (JSON constrained by the answer's schema; llama.cpp).
            Unset: ``json_schema`` for the local model, ``tools`` otherwise.
        llm_base_url: The endpoint (``None``: OpenAI's).
        llm_api_key: The key (``TROIKA_LLM_API_KEY``, or ``OPENAI_API_KEY``).
        llm_model: The model name the endpoint knows.
        llm_timeout_s: One request's time limit.
        llm_max_retries: Retries of a failed request (rate limits, 5xx, timeouts), with back-off.
        llm_validation_retries: Times an answer that fails validation is sent back to be fixed.
        llm_temperature: Sampling temperature.
        llm_max_tokens: The longest answer asked for, in tokens.
        llm_context_tokens: The model's context in tokens, when known (``troika up`` sets it
            for the local model): requests are measured against it before they are sent.
        llm_strict_tools: Offers functions in strict mode (the provider enforces each schema).
            Unset: on for OpenAI's and Azure's own endpoints, off for other servers, which
            may not accept it.
        llm_api_version: Azure OpenAI's ``api-version`` for its deployment-style endpoint
            (``llm_base_url`` is then the resource's address and ``llm_model`` the
            deployment). Not needed for Azure's ``/openai/v1/`` endpoint.
        llm_extra_body: More fields for every request, as JSON: a server's own sampling
            options (llama.cpp's ``repeat_penalty``, vLLM's ``top_k``, …).
        llm_images: Whether the model reads images (screenshots are then shown to it).
            Unset: by the model's name (GPT-4o, GPT-4.1, GPT-5, o3/o4, Claude, Gemini, and
            names with ``vision``, ``-vl``, LLaVA, Pixtral).
    """

    llm_provider: Literal["auto", "openai", "local"] = "auto"
    llm_mode: Literal["tools", "json_schema"] | None = None
    llm_base_url: str | None = None
    llm_api_key: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("TROIKA_LLM_API_KEY", "OPENAI_API_KEY")
    )
    llm_model: str = "gpt-4o-mini"
    llm_timeout_s: float = Field(default=60.0, gt=0)
    llm_max_retries: int = Field(default=3, ge=0, le=10)
    llm_validation_retries: int = Field(default=1, ge=0, le=5)
    llm_temperature: float = Field(default=0.2, ge=0, le=2)
    llm_max_tokens: int = Field(default=4096, ge=16, le=200_000)
    llm_context_tokens: int | None = Field(default=None, ge=256)
    llm_strict_tools: bool | None = None
    llm_api_version: str | None = None
    llm_extra_body: dict[str, Any] | None = None
    llm_images: bool | None = None

    @property
    def sees_images(self) -> bool:
        """Whether screenshots are shown to the model."""
        return sees_images(self.llm_model, self.llm_images)

    @property
    def strict_tools(self) -> bool:
        """Whether functions are offered in strict mode."""
        if self.llm_strict_tools is not None:
            return self.llm_strict_tools
        host = re.sub(r"^\w+://", "", self.llm_base_url or "api.openai.com").split("/")[0]
        return host == "api.openai.com" or host.endswith(".openai.azure.com")


_SEEING = re.compile(
    r"^(gpt-4o|gpt-4\.1|gpt-5|o3|o4|claude|gemini)|vision|-vl\b|llava|pixtral", re.IGNORECASE
)


def sees_images(model: str, setting: bool | None = None) -> bool:  # noqa: FBT001 - a setting
    """Whether a model reads images: the setting when given, else by the model's name."""
    if setting is not None:
        return setting
    return bool(_SEEING.search(model.rsplit("/", 1)[-1]))


class UnusableAnswer(PermanentError):
    """The model's answer could not be used, even after it was asked to fix it.

    Attributes:
        usage: What the failed attempts cost.
        model_fault: Whether the model is to blame (``False``: the setup is, see
            :class:`ContextTooSmall`); only the model's faults count towards giving up on it.
    """

    model_fault = True

    def __init__(self, reason: str, usage: Usage) -> None:
        super().__init__(reason)
        self.usage = usage


class ContextTooSmall(UnusableAnswer):
    """A request does not fit the model's context: a configuration problem, told plainly.

    Attributes:
        needed: About how many tokens the request needs (``None``: the server said no more).
        available: The model's context (``None``: unknown).
    """

    model_fault = False

    def __init__(self, needed: int | None, available: int | None, usage: Usage) -> None:
        if needed is not None and available is not None:
            size = f"this step needs about {needed:,} tokens and the model takes {available:,}"
        else:
            size = "the model's server refused this step as too long for its context"
        super().__init__(
            f"{size}: set a model with a bigger context (TROIKA_LLM_MODEL, TROIKA_LLM_BASE_URL) "
            "or give this one more (TROIKA_LLM_CONTEXT_TOKENS), or shorten the task's files "
            "and instructions",
            usage,
        )
        self.needed = needed
        self.available = available


@dataclass(frozen=True, slots=True)
class Completion(Generic[T]):
    """A structured answer and what it cost."""

    value: T
    usage: Usage


@dataclass(frozen=True, slots=True)
class Choice:
    """The function calls the model chose and what they cost."""

    calls: tuple[FunctionCall, ...]
    usage: Usage


class LLM(Protocol):
    """What an agent needs from a language model."""

    async def complete(
        self,
        *,
        system: str,
        messages: Sequence[Mapping[str, str]],
        response_model: type[T],
        context: dict[str, Any] | None = None,
    ) -> Completion[T]:
        """A structured answer to the conversation."""
        ...

    async def choose(
        self,
        *,
        system: str,
        messages: Sequence[Mapping[str, Any]],
        functions: Sequence[Function],
        check: Callable[[Sequence[FunctionCall]], list[str]],
        max_calls: int = 5,
    ) -> Choice:
        """The calls the model makes among ``functions``; ``check`` names what is wrong with
        them (nothing: they are accepted), and a wrong answer is sent back to be fixed."""
        ...

    @property
    def context_tokens(self) -> int | None:
        """The model's context in tokens, when known."""
        ...

    @property
    def max_tokens(self) -> int:
        """The longest answer asked for."""
        ...

    def offer_tokens(self, functions: Sequence[Function]) -> int:
        """About how many tokens of the prompt offering ``functions`` takes."""
        ...

    @property
    def sees_images(self) -> bool:
        """Whether the model reads images in a message (``image_url`` parts)."""
        ...


def fence(label: str, text: str) -> str:
    """Marks ``text`` as data for the model: quoted, labelled, never to be read as instructions.

    Text from web pages, files, e-mails and tool output goes through here before it enters a
    prompt. A fence marker inside the text is neutralised so the data cannot close its fence.
    """
    safe = text.replace("<<<", "< < <").replace(">>>", "> > >")
    return f"<<<DATA {label}>>>\n{safe}\n<<<END DATA {label}>>>"
