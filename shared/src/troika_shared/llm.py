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

import functools
import re
import time
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, Literal, Protocol, TypeVar

import instructor
import openai
import structlog
from instructor.core.exceptions import (
    IncompleteOutputException,
    InstructorError,
    InstructorRetryException,
)
from pydantic import AliasChoices, BaseModel, Field, SecretStr, ValidationError, ValidationInfo

from troika_shared.costs import estimate_cost, estimate_tokens
from troika_shared.errors import DependencyUnavailable, PermanentError
from troika_shared.functions import (
    CallProblem,
    Function,
    FunctionCall,
    calls_in_json,
    calls_in_message,
    json_choice_schema,
    refusal,
    relax,
    strict_parameters,
    validation_problems,
)
from troika_shared.messages import Usage
from troika_shared.settings import TroikaSettings

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

__all__ = [
    "LLM",
    "Choice",
    "Completion",
    "ContextTooSmall",
    "LlmSettings",
    "OpenAICompatibleLLM",
    "UnusableAnswer",
    "answer_context",
    "estimate_cost",
    "estimate_tokens",
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

    @property
    def strict_tools(self) -> bool:
        """Whether functions are offered in strict mode."""
        if self.llm_strict_tools is not None:
            return self.llm_strict_tools
        host = re.sub(r"^\w+://", "", self.llm_base_url or "api.openai.com").split("/")[0]
        return host == "api.openai.com" or host.endswith(".openai.azure.com")


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
        messages: Sequence[Mapping[str, str]],
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
        address = base_url or settings.llm_base_url
        self._openai: openai.AsyncOpenAI
        if settings.llm_api_version:
            self._openai = openai.AsyncAzureOpenAI(
                api_key=key,
                azure_endpoint=address or "",
                api_version=settings.llm_api_version,
                timeout=settings.llm_timeout_s,
                max_retries=settings.llm_max_retries,
            )
        else:
            self._openai = openai.AsyncOpenAI(
                api_key=key,
                base_url=address,
                timeout=settings.llm_timeout_s,
                max_retries=settings.llm_max_retries,
            )
        mode = settings.llm_mode or ("json_schema" if settings.llm_provider == "local" else "tools")
        self._json = mode == "json_schema"
        self._client = instructor.from_openai(
            self._openai,
            mode=instructor.Mode.JSON_SCHEMA if self._json else instructor.Mode.TOOLS,
        )

    @property
    def context_tokens(self) -> int | None:
        """The model's context in tokens, when known."""
        return self._settings.llm_context_tokens

    @property
    def max_tokens(self) -> int:
        """The longest answer asked for."""
        return self._settings.llm_max_tokens

    def offer_tokens(self, functions: Sequence[Function]) -> int:
        """About how many tokens of the prompt offering ``functions`` takes: the tools as
        the chat template writes them, or (constrained JSON) the list in the instructions; a
        response format's schema becomes the server's grammar, not prompt."""
        if self._json:
            return estimate_tokens(_listing(functions))
        return estimate_tokens([f.wire(strict=False) for f in functions])

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
            ContextTooSmall: The request does not fit the model's context.
            UnusableAnswer: The answers did not validate, or the endpoint refused the request.
        """
        conversation: list[Any] = [{"role": "system", "content": system}, *map(dict, messages)]
        model = _schema_of(response_model)
        self._measure(conversation, None if self._json else model.openai_schema)
        started = time.perf_counter()
        checked_against = _ANSWER_CONTEXT.set(context)
        try:
            value, raw = await self._client.create_with_completion(
                model=self.model,
                messages=conversation,
                response_model=model,
                max_retries=self._settings.llm_validation_retries,
                temperature=self._settings.llm_temperature,
                max_tokens=self._settings.llm_max_tokens,
                extra_body=self._settings.llm_extra_body,
            )
        except InstructorRetryException as exc:
            cause = exc.__cause__ or exc.__context__
            if isinstance(cause, openai.APIError):
                raise self._api_error(cause) from exc
            usage = self._usage(getattr(exc, "total_usage", None), started)
            raise UnusableAnswer(
                f"the model's answer was not usable: {_plain(exc)}", usage
            ) from exc
        except IncompleteOutputException as exc:
            raw_usage = getattr(getattr(exc, "last_completion", None), "usage", None)
            raise UnusableAnswer(
                f"the model's answer was cut off at {self._settings.llm_max_tokens} tokens",
                self._usage(raw_usage, started),
            ) from exc
        except InstructorError as exc:
            usage = self._usage(None, started)
            raise UnusableAnswer(
                f"the model's answer was not usable: {_short(exc)}", usage
            ) from exc
        except openai.APIError as exc:
            raise self._api_error(exc) from exc
        finally:
            _ANSWER_CONTEXT.reset(checked_against)
        usage = self._usage(getattr(raw, "usage", None), started, model=getattr(raw, "model", None))
        self._log(usage)
        return Completion(value=value, usage=usage)

    async def choose(
        self,
        *,
        system: str,
        messages: Sequence[Mapping[str, str]],
        functions: Sequence[Function],
        check: Callable[[Sequence[FunctionCall]], list[str]],
        max_calls: int = 5,
    ) -> Choice:
        """The calls the model makes among ``functions``.

        In ``tools`` mode each function is a native tool (strict when the settings say so),
        with ``tool_choice: required`` and parallel calls; in ``json_schema`` mode the answer
        is one JSON object constrained to a list of those calls. An answer with no readable
        call, or one ``check`` finds wrong, is sent back with what is wrong, up to
        ``llm_validation_retries`` times.

        Raises:
            DependencyUnavailable: The endpoint kept failing or could not be reached.
            ContextTooSmall: The request does not fit the model's context.
            UnusableAnswer: No acceptable answer came, or the endpoint refused the request.
        """
        strict = self._settings.strict_tools and not self._json
        schemas = {f.name: f.parameters for f in functions}
        relaxed = {f.name for f in functions if strict and strict_parameters(f.parameters)}
        request: dict[str, Any]
        if self._json:
            system = f"{system}\n\n{_listing(functions)}"
            schema = json_choice_schema(functions, max_calls)
            request = {
                "response_format": {
                    "type": "json_schema",
                    "json_schema": {"name": "calls", "schema": schema},
                }
            }
        else:
            request = {
                "tools": [f.wire(strict=strict) for f in functions],
                "tool_choice": "required",
                "parallel_tool_calls": max_calls > 1,
            }
        conversation: list[Any] = [{"role": "system", "content": system}, *map(dict, messages)]
        self._measure(conversation, None if self._json else request)
        started = time.perf_counter()
        spent: list[Any] = []
        problems: list[str] = []
        for _attempt in range(self._settings.llm_validation_retries + 1):
            try:
                raw = await self._openai.chat.completions.create(
                    model=self.model,
                    messages=conversation,
                    temperature=self._settings.llm_temperature,
                    max_tokens=self._settings.llm_max_tokens,
                    extra_body=self._settings.llm_extra_body,
                    **request,
                )
            except openai.APIError as exc:
                raise self._api_error(exc, self._usage(_sum(spent), started)) from exc
            spent.append(raw.usage)
            if not raw.choices:
                problems = ["the answer was empty: call one of the functions"]
                continue
            choice = raw.choices[0]
            try:
                found = (
                    calls_in_json(choice.message.content)
                    if self._json
                    else calls_in_message(choice.message)
                )
            except CallProblem as exc:
                calls, problems = [], [str(exc)]
            else:
                calls = [
                    FunctionCall(c.name, relax(c.arguments, schemas[c.name]), c.id)
                    if c.name in relaxed
                    else c
                    for c in found
                ]
                problems = check(calls)
            if choice.finish_reason == "length":  # even when what came can be read
                problems.append(
                    f"the answer was cut off at {self._settings.llm_max_tokens} tokens: "
                    "answer more briefly, or split the work into several calls"
                )
            if not problems:
                usage = self._usage(_sum(spent), started, model=raw.model)
                self._log(usage)
                return Choice(calls=tuple(calls), usage=usage)
            log.info("llm.answer_refused", problems=problems[:3])
            conversation += refusal(choice.message, problems, json_mode=self._json)
        usage = self._usage(_sum(spent), started)
        raise UnusableAnswer(f"the model's answer was not usable: {'; '.join(problems)}", usage)

    def _measure(self, conversation: list[Any], offered: object) -> None:
        """Refuses a request that cannot fit the model's context, before it is sent."""
        available = self._settings.llm_context_tokens
        if available is None:
            return
        needed = estimate_tokens(conversation, offered) + self._settings.llm_max_tokens
        if needed > available:
            raise ContextTooSmall(needed, available, Usage(model=self.model))

    def _log(self, usage: Usage) -> None:
        log.info(
            "llm.completed",
            model=usage.model,
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
            latency_ms=round(usage.latency_ms, 1),
        )

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

    def _api_error(self, exc: openai.APIError, usage: Usage | None = None) -> Exception:
        transient = (
            openai.APIConnectionError,
            openai.APITimeoutError,
            openai.RateLimitError,
            openai.InternalServerError,
        )
        if isinstance(exc, transient):
            return DependencyUnavailable("llm", _short(exc))
        usage = usage or Usage(model=self.model)
        if _TOO_LONG.search(str(exc)):
            return ContextTooSmall(None, self._settings.llm_context_tokens, usage)
        status = getattr(exc, "status_code", None)
        return UnusableAnswer(
            f"the model endpoint refused the request ({status}): {_short(exc)}", usage
        )


# How the common servers refuse a request longer than the model's context: OpenAI and Azure
# (context_length_exceeded), vLLM, llama.cpp, Ollama.
_TOO_LONG = re.compile(
    r"context_length_exceeded|maximum context length|exceeds the available context size|"
    r"context (?:size|window|length) (?:has been |was )?exceeded|prompt is too long|"
    r"too many tokens",
    re.IGNORECASE,
)


class _Spent:
    """Tokens summed over the attempts of one answer."""

    def __init__(self, prompt_tokens: int, completion_tokens: int) -> None:
        self.prompt_tokens = prompt_tokens
        self.completion_tokens = completion_tokens


def _sum(usages: list[Any]) -> _Spent:
    return _Spent(
        sum(int(getattr(u, "prompt_tokens", 0) or 0) for u in usages),
        sum(int(getattr(u, "completion_tokens", 0) or 0) for u in usages),
    )


def _listing(functions: Sequence[Function]) -> str:
    """The functions as instructions name them, when the answer is constrained JSON."""
    names = "\n".join(f"- {f.name}: {f.description}" for f in functions)
    return f"Answer with JSON: a list of calls of these functions:\n{names}"


def _plain(exc: InstructorRetryException) -> str:
    """Why instructor's last attempt failed, as plain lines (not its transcript of attempts)."""
    attempts = getattr(exc, "failed_attempts", None) or []
    last = attempts[-1].exception if attempts else exc.__cause__
    if isinstance(last, ValidationError):
        return "; ".join(validation_problems(last))
    return _short(last or exc)


def _short(exc: BaseException, limit: int = 300) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
