"""What pairing leaves on the PC, and that the agent stands on its own."""

from __future__ import annotations

import stat
import subprocess
import sys

import pytest

from troika_desktop.ledger import Ledger
from troika_desktop.pairing import Pairing, PairingError, PairingStore, pair

PAIRING = Pairing("http://gateway:8000", "d" * 32, "laptop", "secret-token", "ab" * 32)


def test_the_credential_is_kept_for_this_user_only_and_forgotten_on_request(tmp_path) -> None:
    store = PairingStore(tmp_path / "home", keyring=False)
    assert store.load() is None
    assert store.save(PAIRING) == str(store.file)
    assert stat.S_IMODE(store.file.stat().st_mode) == 0o600
    assert stat.S_IMODE(store.home.stat().st_mode) == 0o700
    assert store.load() == PAIRING
    assert store.forget() is True
    assert store.load() is None
    assert store.forget() is False


def test_pairing_with_a_gateway_that_is_not_there_says_so() -> None:
    with pytest.raises(PairingError, match=r"could not reach http://127\.0\.0\.1:9"):
        pair("http://127.0.0.1:9", "ABCD-2345", "laptop", timeout=2)
    with pytest.raises(PairingError, match=r"use http\(s\)://host:port"):
        pair("gateway:8000", "ABCD-2345")


def test_the_record_of_actions_survives_a_restart_and_a_torn_last_line(tmp_path) -> None:
    path = tmp_path / "done.jsonl"
    ledger = Ledger(path)
    ledger.put("k1", {"ok": True, "output": "typed 5 characters"})
    ledger.put("k2", {"ok": False, "error": "no window"})
    with path.open("a", encoding="utf-8") as file:
        file.write('{"key": "k3", "outc')  # a crash in the middle of a line
    again = Ledger(path)
    assert again.get("k1") == {"ok": True, "output": "typed 5 characters"}
    assert again.get("k2") == {"ok": False, "error": "no window"}
    assert again.get("k3") is None
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_the_agent_needs_none_of_the_servers_packages() -> None:
    code = (
        "import sys\n"
        "for name in ('troika_shared', 'troika_gateway', 'troika_client', 'nats', 'openai'):\n"
        "    sys.modules[name] = None  # importing any of them fails\n"
        "import troika_desktop.__main__, troika_desktop.agent, troika_desktop.actions\n"
        "import troika_desktop.ledger, troika_desktop.pairing, troika_desktop.seal\n"
        "import troika_desktop.shots, troika_desktop.x11\n"
        "troika_desktop.__main__.parser().parse_args(['status'])\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
