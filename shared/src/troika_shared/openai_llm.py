"""The :class:`~troika_shared.llm.LLM` on any OpenAI-compatible chat-completions endpoint.

Structured answers go through ``instructor`` (one function whose arguments are the answer);
choices among several functions through the ``openai`` client itself (see
:mod:`troika_shared.functions`). Requests are measured against the model's context before they
are sent; transient failures are retried by the client and then raised as
:class:`~troika_shared.errors.DependencyUnavailable`; unusable answers and refusals become
:class:`~troika_shared.llm.UnusableAnswer` with a plain reason.
"""

from __future__ import annotations

import functools
import re
import time
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import instructor
import openai
import structlog
from instructor.core.exceptions import (
    IncompleteOutputException,
    InstructorError,
    InstructorRetryException,
)
from openai.types.chat import ChatCompletion
from pydantic import BaseModel, ValidationError

from troika_shared import tracing
from troika_shared.costs import estimate_cost, estimate_tokens
from troika_shared.errors import DependencyUnavailable
from troika_shared.functions import (
    CallProblem,
    FunctionCall,
    calls_in_json,
    calls_in_message,
    json_choice_schema,
    refusal,
    relax,
    strict_parameters,
    validation_problems,
)
from troika_shared.llm import (
    Choice,
    Completion,
    ContextTooSmall,
    LlmSettings,
    UnusableAnswer,
    checked_against,
)
from troika_shared.messages import Usage
from troika_shared.metrics import count_llm_call

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Mapping, Sequence

    from troika_shared.functions import Function

__all__ = ["OpenAICompatibleLLM"]

log = structlog.get_logger("troika.llm")

T = TypeVar("T", bound=BaseModel)


class _Answered(Protocol):
    @property
    def usage(self) -> Usage: ...


A = TypeVar("A", bound=_Answered)


@functools.cache
def _schema_of(response_model: type[T]) -> type[T]:
    """The answer's model as instructor offers and parses it, made once per model (instructor
    would build a new class from it on every call)."""
    return instructor.openai_schema(response_model)


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

    @property
    def sees_images(self) -> bool:
        """Whether the model reads images (``TROIKA_LLM_IMAGES``, else by its name)."""
        return self._settings.sees_images

    async def close(self) -> None:
        """Closes the HTTP connections."""
        await self._openai.close()

    async def _traced(self, call: Awaitable[A]) -> A:
        """Runs a model call in its GenAI span, which records what it used."""
        with tracing.model_call(
            self.model,
            provider="azure.ai.openai" if self._settings.llm_api_version else "openai",
            server=self._openai.base_url.host,
            max_tokens=self._settings.llm_max_tokens,
            temperature=self._settings.llm_temperature,
        ) as span:
            answered = await call
            tracing.set_usage(span, answered.usage)
            return answered

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
        return await self._traced(self._complete(system, messages, response_model, context))

    async def _complete(
        self,
        system: str,
        messages: Sequence[Mapping[str, str]],
        response_model: type[T],
        context: dict[str, Any] | None,
    ) -> Completion[T]:
        conversation: list[Any] = [{"role": "system", "content": system}, *map(dict, messages)]
        model = _schema_of(response_model)
        self._measure(conversation, None if self._json else model.openai_schema)
        started = time.perf_counter()
        try:
            with checked_against(context):
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
        usage = self._usage(getattr(raw, "usage", None), started, model=getattr(raw, "model", None))
        self._log(usage)
        return Completion(value=value, usage=usage)

    async def choose(
        self,
        *,
        system: str,
        messages: Sequence[Mapping[str, Any]],
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
        return await self._traced(self._choose(system, messages, functions, check, max_calls))

    async def _choose(
        self,
        system: str,
        messages: Sequence[Mapping[str, Any]],
        functions: Sequence[Function],
        check: Callable[[Sequence[FunctionCall]], list[str]],
        max_calls: int,
    ) -> Choice:
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
                raw = await self._chat(conversation, request)
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

    async def _chat(self, conversation: list[Any], request: dict[str, Any]) -> ChatCompletion:
        """One chat completion, its body sent as built: the body is plain JSON already, so the
        client's walk of every message and tool schema against its parameter types (a tenth of
        the executor's CPU time) is skipped; retries, timeouts and errors are the client's."""
        body = {
            "model": self.model,
            "messages": conversation,
            "temperature": self._settings.llm_temperature,
            "max_tokens": self._settings.llm_max_tokens,
            **request,
            **(self._settings.llm_extra_body or {}),
        }
        return await self._openai.post("/chat/completions", body=body, cast_to=ChatCompletion)

    def _measure(self, conversation: list[Any], offered: object) -> None:
        """Refuses a request that cannot fit the model's context, before it is sent."""
        available = self._settings.llm_context_tokens
        if available is None:
            return
        needed = estimate_tokens(conversation, offered) + self._settings.llm_max_tokens
        if needed > available:
            raise ContextTooSmall(needed, available, Usage(model=self.model))

    def _log(self, usage: Usage) -> None:
        count_llm_call(usage)
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
