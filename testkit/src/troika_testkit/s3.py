"""An S3-compatible server for the tests: moto's server mode, on a loopback port.

It implements S3's API (objects, listing, multipart uploads and conditional writes) in memory,
so the task-file store is tested against real HTTP requests signed as for AWS.
"""

from __future__ import annotations

import secrets
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field

from aiobotocore.session import get_session

from troika_testkit.pace import scaled
from troika_testkit.ports import free_port

__all__ = ["S3Server"]

ACCESS_KEY, SECRET_KEY, REGION = "troika-test", "troika-test-secret", "us-east-1"


@dataclass
class S3Server:
    """``python -m moto.server`` on ``host`` (loopback unless said); a context manager that
    starts it. Without entering, it is a handle on one started elsewhere (another host's)."""

    port: int = field(default_factory=free_port)
    host: str = "127.0.0.1"
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The endpoint, e.g. ``http://127.0.0.1:PORT``."""
        return f"http://{self.host}:{self.port}"

    def client_options(self) -> dict[str, str]:
        """What ``session.create_client("s3", **options)`` needs to reach it."""
        return {
            "endpoint_url": self.url,
            "aws_access_key_id": ACCESS_KEY,
            "aws_secret_access_key": SECRET_KEY,
            "region_name": REGION,
        }

    def files_env(self, bucket: str) -> dict[str, str]:
        """The ``TROIKA_FILES*`` variables that keep a service's task files in ``bucket``."""
        return {
            "TROIKA_FILES": "s3",
            "TROIKA_FILES_BUCKET": bucket,
            "TROIKA_FILES_ENDPOINT_URL": self.url,
            "TROIKA_FILES_ACCESS_KEY_ID": ACCESS_KEY,
            "TROIKA_FILES_SECRET_ACCESS_KEY": SECRET_KEY,
            "TROIKA_FILES_REGION": REGION,
        }

    async def new_bucket(self) -> str:
        """Makes an empty bucket of a new name; returns the name."""
        name = f"troika-{secrets.token_hex(6)}"
        async with get_session().create_client("s3", **self.client_options()) as client:
            await client.create_bucket(Bucket=name)
        return name

    async def names(self, bucket: str, prefix: str = "") -> list[str]:
        """The keys in the bucket that start with ``prefix``, that prefix left out, sorted."""
        async with get_session().create_client("s3", **self.client_options()) as client:
            listed = await client.list_objects_v2(Bucket=bucket, Prefix=prefix)
        return sorted(str(item["Key"])[len(prefix) :] for item in listed.get("Contents", []))

    def __enter__(self) -> S3Server:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", self.host, "-p", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        limit = scaled(30)
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    pass
                urllib.request.urlopen(f"{self.url}/moto-api/", timeout=2).close()  # noqa: S310 - our own server
            except OSError:
                if self.process.poll() is not None:
                    raise RuntimeError("the S3 server (moto) exited at start") from None
                time.sleep(0.1)
            else:
                return self
        raise RuntimeError(f"the S3 server (moto) did not answer within {limit:.0f} s")

    def __exit__(self, *_: object) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)
