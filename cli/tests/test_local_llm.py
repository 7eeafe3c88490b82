"""The local provider: the embedded llama.cpp server answers the agents' structured requests."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import httpx
import pytest
from pydantic import BaseModel

from troika.local_llm import default_gguf, model_name
from troika_shared.llm import LlmSettings
from troika_shared.openai_llm import OpenAICompatibleLLM
from troika_testkit import scaled
from troika_testkit.ports import free_port

pytestmark = pytest.mark.slow


class Capital(BaseModel):
    city: str
    country: str


@pytest.fixture
def local_llm():
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TROIKA_")}
    process = subprocess.Popen(
        [sys.executable, "-m", "troika.local_llm", "--port", str(port), "--threads", "2"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip

    def healthy() -> bool:
        try:
            return httpx.get(f"http://127.0.0.1:{port}/health").status_code == 200
        except httpx.HTTPError:
            return False

    try:
        deadline = time.monotonic() + scaled(60)
        while not healthy():
            assert process.poll() is None, process.stdout.read() if process.stdout else ""
            assert time.monotonic() < deadline, "the local model did not start"
            time.sleep(0.2)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=scaled(20))
        assert process.returncode == 0, output


async def test_the_local_model_answers_a_structured_request(local_llm) -> None:
    settings = LlmSettings(
        llm_provider="local",
        llm_base_url=local_llm,
        llm_model=model_name(default_gguf()),
        llm_timeout_s=scaled(60),  # the answer is worked out on this machine's CPU
        llm_max_retries=0,
    )
    llm = OpenAICompatibleLLM(settings)
    try:
        answer = await llm.complete(
            system="You answer geography questions.",
            messages=[{"role": "user", "content": "What is the capital of France?"}],
            response_model=Capital,
        )
    finally:
        await llm.close()
    # the schema holds, whatever the small model thinks; the call is counted like any other
    assert isinstance(answer.value, Capital)
    assert answer.value.city.strip()
    assert answer.usage.model == "SmolLM2-135M-Instruct.Q4_1"
    assert answer.usage.prompt_tokens > 10
    assert answer.usage.completion_tokens > 0
    assert answer.usage.cost_usd == 0  # a local model costs nothing


def test_a_missing_model_file_is_refused_plainly(tmp_path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TROIKA_")}
    finished = subprocess.run(
        [sys.executable, "-m", "troika.local_llm", "--port", str(free_port()),
         "--gguf", str(tmp_path / "nope.gguf")],
        env=env, capture_output=True, text=True, timeout=scaled(30), check=False,
    )  # fmt: skip
    assert finished.returncode == 1
    assert f"no model to serve: {tmp_path / 'nope.gguf'} is not a file" in finished.stderr
