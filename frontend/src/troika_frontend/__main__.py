"""``python -m troika_frontend``: builds the web app and serves it (pages and socket) on one port.

Reflex compiles the pages and bundles them with bun, then serves everything from one process;
the first start on a new machine fetches the JavaScript packages pinned in ``reflex.lock/``
from the npm registry, later starts reuse bun's cache.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from troika_frontend.settings import WebSettings

__all__ = ["app_root", "find_bun", "main"]

_BUN_HINT = (
    "the web app needs bun (1.4.4 or newer) to build its pages: run `make install`, or install "
    "it with `npm i --prefix .tools/bun bun@1.4.5`, or point REFLEX_BUN_PATH at a bun binary"
)


def app_root() -> Path:
    """The folder with ``rxconfig.py`` and ``reflex.lock/`` (the build goes to ``.web/`` there)."""
    return Path(__file__).resolve().parents[2]


def find_bun(root: Path) -> Path | None:
    """bun from ``REFLEX_BUN_PATH``, the project's ``.tools/``, or ``PATH``."""
    candidates = [
        os.environ.get("REFLEX_BUN_PATH"),
        str(root.parent / ".tools" / "bun" / "node_modules" / ".bin" / "bun"),
        shutil.which("bun"),
    ]
    for candidate in candidates:
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return Path(candidate)
    return None


def main() -> None:
    """Replaces this process with Reflex's production server."""
    settings = WebSettings()
    root = app_root()
    bun = find_bun(root)
    if bun is None:
        sys.exit(_BUN_HINT)
    env = {
        **os.environ,
        "REFLEX_BUN_PATH": str(bun),
        "REFLEX_TELEMETRY_ENABLED": "false",
        "REFLEX_CHECK_LATEST_VERSION": "false",
        "REFLEX_API_URL": settings.url,
        **(
            {"REFLEX_WEB_WORKDIR": str(settings.web_build_dir.resolve())}
            if settings.web_build_dir
            else {}
        ),
        # The pages are built from this package; they need not be importable from the root.
        "PYTHONPATH": os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")])),
    }
    reflex = Path(sys.executable).with_name("reflex")
    argv = [
        str(reflex),
        "run",
        "--env",
        "prod",
        "--single-port",
        "--frontend-port",
        str(settings.web_port),
        "--backend-host",
        settings.web_host,
        "--loglevel",
        "warning" if settings.log_level in ("warning", "error") else "info",
    ]
    os.chdir(root)
    os.execve(argv[0], argv, env)  # noqa: S606 - the project's own Reflex, fixed arguments


if __name__ == "__main__":
    main()
