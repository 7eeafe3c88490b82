"""Where task files are kept: ``TROIKA_FILES`` and the bucket's settings."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import SecretStr

from troika_shared.settings import TroikaSettings

if TYPE_CHECKING:
    from contextlib import AsyncExitStack

    from troika_shared.files.base import FileStore

__all__ = ["FilesSettings"]


class FilesSettings(TroikaSettings):
    """The ``TROIKA_FILES*`` settings.

    Attributes:
        files: ``local`` (the data folder every process shares, one machine) or ``s3`` (an
            S3-compatible bucket: each replica works on a local copy and writes back).
        files_bucket: The bucket (it must exist).
        files_prefix: The start of every key.
        files_endpoint_url: The S3 endpoint (MinIO, Ceph…); unset: AWS S3.
        files_region: The bucket's region.
        files_access_key_id, files_secret_access_key: The credentials (unset: the usual AWS
            sources — environment, profile, instance role).
    """

    files: Literal["local", "s3"] = "local"
    files_bucket: str = ""
    files_prefix: str = "tasks/"
    files_endpoint_url: str | None = None
    files_region: str = "us-east-1"
    files_access_key_id: str | None = None
    files_secret_access_key: SecretStr | None = None

    async def open_store(self, stack: AsyncExitStack) -> FileStore | None:
        """The bucket's store, its client closed with ``stack`` (``None``: files are local).

        Raises:
            ValueError: ``s3`` without a bucket.
        """
        if self.files == "local":
            return None
        if not self.files_bucket:
            raise ValueError("TROIKA_FILES=s3 needs TROIKA_FILES_BUCKET")
        from aiobotocore.session import get_session  # noqa: PLC0415 - the s3 extra

        from troika_shared.files.s3 import S3Store  # noqa: PLC0415 - needs the s3 extra

        secret = self.files_secret_access_key
        client = await stack.enter_async_context(
            get_session().create_client(
                "s3",
                endpoint_url=self.files_endpoint_url,
                region_name=self.files_region,
                aws_access_key_id=self.files_access_key_id,
                aws_secret_access_key=secret.get_secret_value() if secret else None,
            )
        )
        return S3Store(client, self.files_bucket, self.files_prefix)
