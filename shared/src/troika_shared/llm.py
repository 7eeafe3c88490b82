"""The language-model client every agent uses: any OpenAI-compatible endpoint, structured answers.

Answers are pydantic models, obtained with ``instructor`` in tool-calling mode: the model must
call a function whose arguments are the answer, and an answer that fails validation is sent back
with the errors for another try. Transient failures (rate limits, 5xx, timeouts, connection
errors) are retried with back-off by the ``openai`` client and, when they persist, raised as
:class:`~troika_shared.errors.DependencyUnavailable`, so the bus redelivers the message later.
Every call reports its :class:`~troika_shared.messages.Usage`: model, tokens, latency and an
estimated cost.
"""

from __future__ import annotations

import functools
import time
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, Literal, Protocol, TypeVar

import instructor
import openai
import structlog
from instructor.core.exceptions import InstructorRetryException
from pydantic import AliasChoices, BaseModel, Field, SecretStr, ValidationInfo

from troika_shared.errors import DependencyUnavailable, PermanentError
from troika_shared.messages import Usage
from troika_shared.settings import TroikaSettings

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

__all__ = [
    "LLM",
    "Completion",
    "LlmSettings",
    "OpenAICompatibleLLM",
    "UnusableAnswer",
    "answer_context",
    "estimate_cost",
    "fence",
]

log = structlog.get_logger("troika.llm")

T = TypeVar("T", bound=BaseModel)

# What the answer being validated is checked against. instructor would take it as `context=`,
# but then renders every message of the conversation as a Jinja template and dedents it: text
# from a page or a file that holds `{{`, `{%` or indented code would reach the model altered
# (or fail to render), and every message would be compiled as a template on every call.
_ANSWER_CONTEXT: ContextVar[Mapping[str, Any] | None] = ContextVar("answer_context", default=None)


@functools.cache
def _schema_of(response_model: type[T]) -> type[T]:
    """The answer's model as instructor offers and parses it, made once per model (instructor
    would build a new class from it on every call)."""
    return instructor.openai_schema(response_model)


def answer_context(info: ValidationInfo) -> Mapping[str, Any]:
    """What a response model's validators check an answer against: the ``context`` given to
    :meth:`LLM.complete` (or pydantic's own, when a model is validated directly)."""
    return info.context or _ANSWER_CONTEXT.get() or {}


# US dollars per million tokens (input, output): published list prices, for estimates only.
_PRICES: dict[str, tuple[float, float]] = {
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-4o": (2.50, 10.00),
    "gpt-4.1": (2.00, 8.00),
    "gpt-4.1-mini": (0.40, 1.60),
    "gpt-4.1-nano": (0.10, 0.40),
    "o4-mini": (1.10, 4.40),
}


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


class UnusableAnswer(PermanentError):
    """The model's answer could not be used, even after it was asked to fix it.

    Attributes:
        usage: What the failed attempts cost.
    """

    def __init__(self, reason: str, usage: Usage) -> None:
        super().__init__(reason)
        self.usage = usage


@dataclass(frozen=True, slots=True)
class Completion(Generic[T]):
    """A structured answer and what it cost."""

    value: T
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


def estimate_cost(model: str, prompt_tokens: int, completion_tokens: int) -> float:
    """The estimated price of a call in US dollars (0 for models without a known price)."""
    key = next(
        (name for name in sorted(_PRICES, key=len, reverse=True) if model.startswith(name)), None
    )
    if key is None:
        return 0.0
    prompt_price, completion_price = _PRICES[key]
    return (prompt_tokens * prompt_price + completion_tokens * completion_price) / 1_000_000


def fence(label: str, text: str) -> str:
    """Marks ``text`` as data for the model: quoted, labelled, never to be read as instructions.

    Text from web pages, files, e-mails and tool output goes through here before it enters a
    prompt. A fence marker inside the text is neutralised so the data cannot close its fence.
    """
    safe = text.replace("<<<", "< < <").replace(">>>", "> > >")
    return f"<<<DATA {label}>>>\n{safe}\n<<<END DATA {label}>>>"


class OpenAICompatibleLLM:
    """An :class:`LLM` on an OpenAI-compatible chat-completions endpoint.

    Args:
        settings: Endpoint, model and limits.
        base_url: Overrides ``settings.llm_base_url`` (the embedded local server's address).
    """

    def __init__(self, settings: LlmSettings, *, base_url: str | None = None) -> None:
        key = settings.llm_api_key.get_secret_value() if settings.llm_api_key else "not-needed"
        self.model = settings.llm_model
        self._settings = settings
        self._openai = openai.AsyncOpenAI(
            api_key=key,
            base_url=base_url or settings.llm_base_url,
            timeout=settings.llm_timeout_s,
            max_retries=settings.llm_max_retries,
        )
        mode = settings.llm_mode or ("json_schema" if settings.llm_provider == "local" else "tools")
        self._client = instructor.from_openai(
            self._openai,
            mode=instructor.Mode.JSON_SCHEMA if mode == "json_schema" else instructor.Mode.TOOLS,
        )

    async def close(self) -> None:
        """Closes the HTTP connections."""
        await self._openai.close()

    async def complete(
        self,
        *,
        system: str,
        messages: Sequence[Mapping[str, str]],
        response_model: type[T],
        context: dict[str, Any] | None = None,
    ) -> Completion[T]:
        """Asks for an answer of type ``response_model``.

        Raises:
            DependencyUnavailable: The endpoint kept failing or could not be reached.
            UnusableAnswer: The answers did not validate, or the endpoint refused the request.
        """
        conversation: list[Any] = [{"role": "system", "content": system}, *map(dict, messages)]
        started = time.perf_counter()
        checked_against = _ANSWER_CONTEXT.set(context)
        try:
            value, raw = await self._client.create_with_completion(
                model=self.model,
                messages=conversation,
                response_model=_schema_of(response_model),
                max_retries=self._settings.llm_validation_retries,
                temperature=self._settings.llm_temperature,
            )
        except InstructorRetryException as exc:
            cause = exc.__cause__ or exc.__context__
            if isinstance(cause, openai.APIError):
                raise self._api_error(cause) from exc
            usage = self._usage(getattr(exc, "total_usage", None), started)
            raise UnusableAnswer(
                f"the model's answer was not usable: {_short(exc)}", usage
            ) from exc
        except openai.APIError as exc:
            raise self._api_error(exc) from exc
        finally:
            _ANSWER_CONTEXT.reset(checked_against)
        usage = self._usage(getattr(raw, "usage", None), started, model=getattr(raw, "model", None))
        log.info(
            "llm.completed",
            model=usage.model,
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
            latency_ms=round(usage.latency_ms, 1),
        )
        return Completion(value=value, usage=usage)

    def _usage(self, usage: Any, started: float, model: str | None = None) -> Usage:  # noqa: ANN401 - the SDK's usage object
        prompt = int(getattr(usage, "prompt_tokens", 0) or 0)
        completion = int(getattr(usage, "completion_tokens", 0) or 0)
        name = model or self.model
        return Usage(
            model=name,
            prompt_tokens=prompt,
            completion_tokens=completion,
            latency_ms=(time.perf_counter() - started) * 1000,
            cost_usd=estimate_cost(name, prompt, completion),
        )

    def _api_error(self, exc: openai.APIError) -> Exception:
        transient = (
            openai.APIConnectionError,
            openai.APITimeoutError,
            openai.RateLimitError,
            openai.InternalServerError,
        )
        if isinstance(exc, transient):
            return DependencyUnavailable("llm", _short(exc))
        status = getattr(exc, "status_code", None)
        return UnusableAnswer(
            f"the model endpoint refused the request ({status}): {_short(exc)}",
            Usage(model=self.model),
        )


def _short(exc: BaseException, limit: int = 300) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
