"""A scripted OpenAI-compatible server: the one outside service Troika's tests replace.

It speaks the chat-completions protocol on a loopback port, so the real ``openai`` +
``instructor`` code path runs end to end. Answers come from a script, per response model
(the function the client asks the model to call): queued arguments, or a function of the
request. Errors and delays can be injected, and every request is kept for assertions, with
the time the server spent on it (``served``: what a benchmark subtracts from a task's time).

    llm = ScriptedLLM().start()
    llm.reply("PlanDraft", {"decision": "plan", "summary": "…", "subtasks": […]})
    llm.fail(503, times=2)             # the next two requests fail
    settings = LlmSettings(llm_base_url=llm.base_url, llm_model="scripted")

An executor step offers many functions at once; the script answers it under the name
``StepDecision`` with a decision — ``{"action": "use_tools", "tool_calls": [{"tool": …,
"arguments": …}]}``, ``{"action": "finish", "result": …, "result_files": […]}`` or
``{"action": "stuck", "stuck_reason": …}`` — or with raw ``{"calls": [{"name": …,
"arguments": …}]}``, and the server writes it the way the request asks (native tool calls, or
JSON content for a ``json_schema`` request) in the server's ``dialect``: how the common
servers return tool calls (see :data:`Dialect`).
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import uvicorn

from troika_testkit.pace import scaled
from troika_testkit.ports import free_port

__all__ = ["STEP", "Dialect", "Fault", "Later", "Reply", "ScriptedLLM", "Served", "step_calls"]


@dataclass(frozen=True)
class Fault:
    """An answer no model gives: an HTTP error, after a wait (longer than the client's time
    limit: a hang).

    Attributes:
        status: The HTTP status.
        message: The error's message.
        retry_after: Seconds in a ``Retry-After`` header, if any.
        delay_s: How long to wait before answering.
    """

    status: int = 503
    message: str = "injected failure"
    retry_after: float | None = None
    delay_s: float = 0.0


@dataclass(frozen=True)
class Later:
    """An answer worked out after a wait: ``reply`` (a :data:`Reply`, or a function of the
    request that may say ``Later`` again) once ``delay_s`` has passed. A script that waits for
    something the test does (a card seen on a page) answers with it; other requests go on."""

    delay_s: float
    reply: Reply


Reply = (
    dict[str, Any] | Fault | Later | Callable[[dict[str, Any]], "dict[str, Any] | Fault | Later"]
)
"""A tool call's arguments (or a whole answer, with ``choices``), a :class:`Fault`, an answer
given :class:`Later`, or a function from the request to one of those."""

Dialect = Literal["openai", "object_arguments", "hermes", "mistral", "content_json"]
"""How a step's tool calls come back: ``openai`` (``tool_calls``, arguments as a JSON string:
OpenAI, Azure, vLLM and llama.cpp with their tool parsers, Ollama's ``/v1``),
``object_arguments`` (``tool_calls`` whose arguments are an object, as some proxies send),
``hermes`` (``<tool_call>{…}</tool_call>`` in the text: a Qwen or Hermes model on a server
without a tool parser), ``mistral`` (``[TOOL_CALLS][…]`` in the text) or ``content_json``
(a bare JSON call in the text, as small models write it)."""

STEP = "StepDecision"

_Send = Callable[[dict[str, Any]], Any]
_Receive = Callable[[], Any]


@dataclass
class _Failure:
    status: int
    times: int
    tool: str | None
    body: str = "injected failure"


@dataclass(frozen=True)
class Served:
    """One request as the server saw it.

    Attributes:
        tool: The response model it asked for.
        started: When it reached the server (``time.perf_counter``, this process's clock).
        seconds: From then until the last byte of the answer was handed to the connection.
    """

    tool: str
    started: float
    seconds: float


@dataclass
class ScriptedLLM:
    """The server and its script.

    Attributes:
        requests: Every chat-completions request body received, in order.
        served: Every chat-completions request's timing, in the order they finished.
        addressed: Every chat-completions request's path (with its query) and headers.
        usage: ``(prompt_tokens, completion_tokens)`` reported for each answer, or
            ``"estimate"``: about one token per four characters of the request's messages and
            tools and of the answer (what a benchmark reports as prompt sizes).
        dialect: How step answers write their tool calls.
    """

    usage: tuple[int, int] | Literal["estimate"] = (120, 30)
    dialect: Dialect = "openai"
    requests: list[dict[str, Any]] = field(default_factory=list)
    addressed: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    served: list[Served] = field(default_factory=list)
    _script: dict[str, deque[Reply]] = field(default_factory=lambda: defaultdict(deque))
    _defaults: dict[str, Reply] = field(default_factory=dict)
    _failures: deque[_Failure] = field(default_factory=deque)
    _delay_s: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: uvicorn.Server | None = None
    _thread: threading.Thread | None = None
    port: int = 0

    # --- the script ----------------------------------------------------------------------

    def reply(self, tool: str, *answers: Reply) -> ScriptedLLM:
        """Queues answers for requests that ask for ``tool`` (the response model's name)."""
        with self._lock:
            self._script[tool].extend(answers)
        return self

    def always(self, tool: str, answer: Reply) -> ScriptedLLM:
        """Answers every request for ``tool`` that finds nothing queued with ``answer``."""
        with self._lock:
            self._defaults[tool] = answer
        return self

    def fail(
        self, status: int, *, times: int = 1, tool: str | None = None, body: str = ""
    ) -> ScriptedLLM:
        """Makes the next ``times`` requests (for ``tool``, or any) answer with ``status``."""
        with self._lock:
            self._failures.append(_Failure(status, times, tool, body or f"injected {status}"))
        return self

    def delay(self, seconds: float) -> ScriptedLLM:
        """Delays every answer."""
        self._delay_s = seconds
        return self

    def asked_for(self, tool: str) -> list[dict[str, Any]]:
        """The requests that asked for ``tool``."""
        return [r for r in self.requests if _tool_of(r) == tool]

    def served_between(self, start: float, end: float) -> list[Served]:
        """The requests that reached the server from ``start`` to ``end`` (``perf_counter``)."""
        with self._lock:
            return [entry for entry in self.served if start <= entry.started <= end]

    @property
    def base_url(self) -> str:
        """What to give the client as ``base_url``."""
        return f"http://127.0.0.1:{self.port}/v1"

    # --- serving -------------------------------------------------------------------------

    def start(self) -> ScriptedLLM:
        """Serves on a free loopback port in a background thread."""
        self.port = free_port()
        config = uvicorn.Config(self._app, host="127.0.0.1", port=self.port, log_config=None,
                                access_log=False, lifespan="off", interface="asgi3")  # fmt: skip
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="scripted-llm", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + scaled(10)
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the scripted LLM server did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        """Stops serving."""
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(scaled(10))

    def __enter__(self) -> ScriptedLLM:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    async def _app(self, scope: dict[str, Any], receive: _Receive, send: _Send) -> None:
        if scope["type"] != "http":
            return
        started = time.perf_counter()
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        if not scope["path"].rstrip("/").endswith("/chat/completions"):
            await _respond(send, 404, {"error": {"message": f"no route {scope['path']}"}})
            return
        request = json.loads(body)
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        with self._lock:
            self.addressed.append((scope["path"] + "?" + scope["query_string"].decode(), headers))
        recorded = False

        def record() -> None:
            nonlocal recorded
            if not recorded:
                recorded = True
                served = Served(_tool_of(request), started, time.perf_counter() - started)
                with self._lock:
                    self.served.append(served)

        async def sending(message: dict[str, Any]) -> None:
            # Recorded before the answer's last bytes leave: whatever the answer sets off (a
            # task completing, announced to a waiting client) then finds it served.
            if message.get("type") == "http.response.body" and not message.get("more_body"):
                record()
            await send(message)

        try:
            await self._answer(request, sending)
        finally:
            record()

    async def _answer(self, request: dict[str, Any], send: _Send) -> None:
        with self._lock:
            self.requests.append(request)
            failure = self._next_failure(_tool_of(request))
            answer = None if failure else self._next_answer(_tool_of(request))
        if self._delay_s:
            await asyncio.sleep(self._delay_s)
        if failure is not None:
            await _respond(
                send, failure.status, {"error": {"message": failure.body, "type": "injected"}}
            )
            return
        if answer is None:
            message = f"the script has no answer for {_tool_of(request)!r}"
            await _respond(send, 400, {"error": {"message": message, "type": "unscripted"}})
            return
        arguments = answer(request) if callable(answer) else answer
        while isinstance(arguments, Later):
            await asyncio.sleep(arguments.delay_s)
            later = arguments.reply
            arguments = later(request) if callable(later) else later
        if isinstance(arguments, Fault):
            await asyncio.sleep(arguments.delay_s)
            headers = (
                {} if arguments.retry_after is None else {"retry-after": str(arguments.retry_after)}
            )
            error = {"error": {"message": arguments.message, "type": "injected"}}
            await _respond(send, arguments.status, error, headers)
            return
        if "choices" in arguments:  # a whole answer, written by the script itself
            await _respond(send, 200, arguments)
            return
        await _respond(send, 200, self._completion(request, arguments))

    def _next_failure(self, tool: str) -> _Failure | None:
        for failure in self._failures:
            if failure.tool in (None, tool):
                failure.times -= 1
                if failure.times <= 0:
                    self._failures.remove(failure)
                return failure
        return None

    def _next_answer(self, tool: str) -> Reply | None:
        queue = self._script.get(tool)
        if queue:
            return queue.popleft()
        return self._defaults.get(tool)

    def _completion(self, request: dict[str, Any], arguments: dict[str, Any]) -> dict[str, Any]:
        message, finish = self._message(request, arguments)
        return self.answer_with(request, message, finish)

    def answer_with(
        self, request: dict[str, Any], message: dict[str, Any], finish: str = "stop"
    ) -> dict[str, Any]:
        """A whole answer to ``request`` holding ``message`` (a script writes its own)."""
        if self.usage == "estimate":
            asked = json.dumps([request.get("messages", []), request.get("tools", [])])
            prompt, completion = _tokens(asked), _tokens(json.dumps(message))
        else:
            prompt, completion = self.usage
        return {
            "id": f"chatcmpl-{len(self.requests)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": request.get("model", "scripted"),
            "choices": [{"index": 0, "finish_reason": finish, "message": message}],
            "usage": {
                "prompt_tokens": prompt,
                "completion_tokens": completion,
                "total_tokens": prompt + completion,
            },
        }

    def _message(
        self, request: dict[str, Any], arguments: dict[str, Any]
    ) -> tuple[dict[str, Any], str]:
        json_mode = (request.get("response_format") or {}).get("type") == "json_schema"
        if _tool_of(request) != STEP:
            if json_mode:
                return {"role": "assistant", "content": json.dumps(arguments)}, "stop"
            return _tool_calls([(_tool_of(request), arguments)], "openai"), "tool_calls"
        calls = step_calls(arguments)
        if json_mode:
            body = {"calls": [{"function": name, "arguments": args} for name, args in calls]}
            return {"role": "assistant", "content": json.dumps(body)}, "stop"
        return _tool_calls(calls, self.dialect), "tool_calls"


def step_calls(decision: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The function calls that carry out a scripted step decision."""
    if "calls" in decision:
        return [(call["name"], call.get("arguments", {})) for call in decision["calls"]]
    action = decision.get("action")
    if action == "finish":
        files = decision.get("result_files", decision.get("files", []))
        return [("finish", {"result": decision.get("result", ""), "files": files})]
    if action == "stuck":
        return [("stuck", {"reason": decision.get("stuck_reason", decision.get("reason", ""))})]
    return [(call["tool"], call.get("arguments", {})) for call in decision.get("tool_calls", [])]


def _tool_calls(calls: list[tuple[str, dict[str, Any]]], dialect: Dialect) -> dict[str, Any]:
    if dialect in ("openai", "object_arguments"):
        native = [
            {
                "id": f"call_{n}_{name}",
                "type": "function",
                "function": {
                    "name": name,
                    "arguments": args if dialect == "object_arguments" else json.dumps(args),
                },
            }
            for n, (name, args) in enumerate(calls)
        ]
        return {"role": "assistant", "content": None, "tool_calls": native}
    as_json = [{"name": name, "arguments": args} for name, args in calls]
    if dialect == "hermes":
        text = "\n".join(f"<tool_call>\n{json.dumps(call)}\n</tool_call>" for call in as_json)
    elif dialect == "mistral":
        text = "[TOOL_CALLS]" + json.dumps(as_json)
    else:
        text = "```json\n" + json.dumps(as_json[0] if len(as_json) == 1 else as_json) + "\n```"
    return {"role": "assistant", "content": text}


def _tokens(text: str) -> int:
    return max(1, -(-len(text) // 4))


def _tool_of(request: dict[str, Any]) -> str:
    """The answer a request asks for: a response model's name, or ``StepDecision`` for an
    executor step (it offers ``finish`` among its functions)."""
    choice = request.get("tool_choice")
    if isinstance(choice, dict):
        return str(choice.get("function", {}).get("name", ""))
    tools = request.get("tools") or []
    if any(tool["function"]["name"] == "finish" for tool in tools):
        return STEP
    if tools:
        return str(tools[0]["function"]["name"])
    schema = (request.get("response_format") or {}).get("json_schema") or {}
    name = str(schema.get("name", ""))
    return STEP if name == "calls" else name


async def _respond(
    send: _Send, status: int, payload: dict[str, Any], extra: dict[str, str] | None = None
) -> None:
    body = json.dumps(payload).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers += [(k.encode(), v.encode()) for k, v in (extra or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
