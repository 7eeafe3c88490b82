"""What ties a tool call to the person's approval of it.

A call's idempotency key names exactly one action: the task, the subtask, the tool and its
canonical arguments. Edited arguments make a new key, so an approval covers only what the
person saw. The gateway signs each approved call (HMAC-SHA256 with a key derived from the
deployment's secret); the executor runs a call only if the signature matches the call it was
given, so nothing that lacks the secret can make it act, and a changed argument breaks the seal.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import TYPE_CHECKING, Any

from troika_shared.messages import derive_id

if TYPE_CHECKING:
    from troika_shared.messages import ToolCall

__all__ = ["approval_key", "call_key", "canonical", "sign_approval", "verify_approval"]

_PURPOSE = b"troika: approved tool calls, v1"


def canonical(arguments: dict[str, Any]) -> str:
    """The arguments as one stable string: sorted keys, no spaces, text as is."""
    return json.dumps(arguments, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def call_key(
    task_id: str, subtask_id: str, tool: str, arguments: dict[str, Any], step: int | None = None
) -> str:
    """A tool call's idempotency key: the same call with the same arguments has the same key.

    ``step``: for a tool whose same call means something new once other calls ran (a click on
    "Next" on the form's next page), the step that proposed it, so that the same call in a
    later step is a new call.
    """
    if step is None:
        return derive_id(task_id, subtask_id, tool, canonical(arguments))
    return derive_id(task_id, subtask_id, tool, canonical(arguments), f"step {step}")


def approval_key(secret: str) -> bytes:
    """The signing key for approvals, derived from the deployment's secret key (never the same
    bytes that sign access tokens)."""
    return hmac.new(secret.encode(), _PURPOSE, hashlib.sha256).digest()


def _payload(task_id: str, call: ToolCall) -> bytes:
    return json.dumps([task_id, call.key, call.tool, canonical(call.arguments)]).encode()


def sign_approval(key: bytes, task_id: str, call: ToolCall) -> str:
    """The seal on an approved call: hex HMAC of the task, the key, the tool and the arguments."""
    return hmac.new(key, _payload(task_id, call), hashlib.sha256).hexdigest()


def verify_approval(key: bytes, task_id: str, call: ToolCall, signature: str) -> bool:
    """Whether ``signature`` seals exactly this call of this task."""
    return hmac.compare_digest(sign_approval(key, task_id, call), signature)
