"""run_python as the agents use it: through the tool registry, with the sandbox behind it."""

from __future__ import annotations

import pytest

from troika_executor import sandbox as sandbox_module
from troika_executor.python_tool import UNAVAILABLE
from troika_executor.sandbox import Sandbox
from troika_executor.stepping import prompt
from troika_executor.tools import Toolbox, run_tool
from troika_shared.messages import (
    Plan,
    StepRequested,
    Subtask,
    ToolCall,
    TranscriptEntry,
)

TASK = "task-py"


@pytest.fixture
def toolbox(tmp_path) -> Toolbox:
    return Toolbox(tmp_path, sandbox=Sandbox(tmp_path))


async def test_a_program_reads_the_tasks_files_and_its_output_and_files_come_back(
    tmp_path, toolbox
) -> None:
    folder = tmp_path / "workspaces" / TASK
    folder.mkdir(parents=True)
    (folder / "numbers.txt").write_text("3\n4\n5\n")
    code = (
        "total = sum(int(line) for line in open('numbers.txt'))\n"
        "print('total', total)\n"
        "open('total.txt', 'w').write(str(total))\n"
    )
    outcome = await run_tool(toolbox, TASK, "run_python", {"code": code})
    assert outcome.ok, outcome.error
    assert "total 12" in outcome.output
    assert outcome.files == ("total.txt",)
    assert (folder / "total.txt").read_text() == "12"


async def test_a_failing_program_shows_the_agent_its_traceback(toolbox) -> None:
    outcome = await run_tool(toolbox, TASK, "run_python", {"code": "1 / 0"})
    assert outcome.ok is False
    assert outcome.error == "the program exited with status 1"
    assert "ZeroDivisionError" in outcome.output
    call = ToolCall(key="k", tool="run_python", arguments={"code": "1 / 0"})
    request = StepRequested(
        correlation_id=TASK,
        objective="divide",
        plan=Plan(summary="p", subtasks=(Subtask(id="s", title="t", description="d"),)),
        subtask_id="s",
        transcript=(TranscriptEntry(call=call, outcome=outcome),),
    )
    shown = prompt(request)[0]["content"]
    assert "FAILED: the program exited with status 1" in shown
    assert "ZeroDivisionError: division by zero" in shown


async def test_a_program_past_its_time_is_stopped(toolbox) -> None:
    outcome = await run_tool(
        toolbox, TASK, "run_python", {"code": "import time\ntime.sleep(30)", "timeout_s": 1}
    )
    assert outcome.ok is False
    assert outcome.error == "stopped after 1 s: the program ran past its time limit"


async def test_without_a_sandbox_no_code_runs(tmp_path) -> None:
    outcome = await run_tool(Toolbox(tmp_path), TASK, "run_python", {"code": "print(1)"})
    assert (outcome.ok, outcome.error) == (False, UNAVAILABLE)


async def test_without_namespaces_or_root_the_agent_hears_why_no_code_runs(
    tmp_path, monkeypatch
) -> None:
    monkeypatch.setattr(sandbox_module, "_namespaces_work", lambda: False)
    sandbox = Sandbox(tmp_path)  # mode "auto"
    sandbox._privileged = False  # as under an executor that is not root
    code = "open('ran.txt', 'w').write('ran')"
    outcome = await run_tool(Toolbox(tmp_path, sandbox=sandbox), TASK, "run_python", {"code": code})
    assert outcome.ok is False
    assert outcome.error is not None
    assert outcome.error.startswith("run_python needs Linux namespaces")
    assert outcome.error.endswith("set TROIKA_SANDBOX=basic to accept weaker isolation")
    assert not (tmp_path / "workspaces" / TASK / "ran.txt").exists()
