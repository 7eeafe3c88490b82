"""Checking the seal on an action: was it approved for this PC, exactly as it arrived?

The gateway seals each approved action with this PC's own key, which the PC received once, when
it was paired: an HMAC-SHA256 over the PC's id, the task, the call's key, the tool and the
arguments as canonical JSON. An action meant for another PC, with changed arguments, or made up
by anything that lacks the key, does not verify. (The gateway's side is
``troika_shared.desktop.seal_action``; this package keeps its own copy so that it installs on a
PC without the server's packages, and a test holds the two to the same bytes.)
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

__all__ = ["verify"]


def verify(
    key: bytes,
    seal: str,
    *,
    device_id: str,
    task_id: str,
    call_key: str,
    tool: str,
    arguments: dict[str, Any],
) -> bool:
    """Whether ``seal`` seals exactly this action for this PC."""
    body = json.dumps(arguments, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    payload = json.dumps([device_id, task_id, call_key, tool, body]).encode()
    expected = hmac.new(key, payload, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, seal)
