"""``run_python``: the agent's program in the sandbox, its outcome told plainly."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from troika_executor.sandbox import SandboxError
from troika_shared.messages import ToolOutcome

if TYPE_CHECKING:
    from troika_executor.sandbox import Sandbox, SandboxLimits, SandboxRun
    from troika_executor.workspace import Workspace
    from troika_shared.catalogue import RunPythonArgs

__all__ = ["run_python"]

UNAVAILABLE = "Python cannot run here: the operator has turned the sandbox off"


def _report(run: SandboxRun) -> str:
    parts = [f"[isolation: {run.isolation}]"]
    if run.stdout:
        parts.append(f"--- stdout ---\n{run.stdout.rstrip()}")
    if run.stderr:
        parts.append(f"--- stderr ---\n{run.stderr.rstrip()}")
    if not run.stdout and not run.stderr:
        parts.append("(no output)")
    if run.changed_files:
        parts.append("files written: " + ", ".join(run.changed_files))
    return "\n".join(parts)


def _failure(run: SandboxRun, limits: SandboxLimits) -> str | None:
    if run.overrun is not None:
        return run.overrun
    if run.timed_out:
        return f"stopped after {limits.timeout_s:g} s: the program ran past its time limit"
    if run.signal == "SIGXCPU":
        return f"stopped: the program used more than {limits.cpu_s} s of CPU time"
    if run.signal is not None:
        return f"the program was killed by {run.signal}"
    if run.exit_code:
        return f"the program exited with status {run.exit_code}"
    return None


async def run_python(
    args: RunPythonArgs, sandbox: Sandbox | None, workspace: Workspace, limits: SandboxLimits
) -> ToolOutcome:
    """Runs the program and says what it printed, which files it wrote, and how it ended."""
    if sandbox is None:
        return ToolOutcome(ok=False, error=UNAVAILABLE)
    limits = replace(limits, timeout_s=args.timeout_s, cpu_s=args.timeout_s)
    try:
        run = await sandbox.run(workspace, args.code, limits)
    except SandboxError as exc:
        return ToolOutcome(ok=False, error=str(exc))
    report = _report(run)
    failure = _failure(run, limits)
    if failure is not None:
        return ToolOutcome(ok=False, output=report, error=failure, files=run.changed_files)
    return ToolOutcome(ok=True, output=report, files=run.changed_files)
