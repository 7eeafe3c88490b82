"""Task files in an S3-compatible bucket (AWS S3, MinIO, Ceph, R2…), through aiobotocore.

Each task's files are the objects under ``<prefix><task id>/``. Reads stream the object's body;
writes stream from a local file, in one request up to ``multipart_bytes`` (8 MiB) and as a
multipart upload of 8 MiB parts above it, so a transfer holds at most one part in memory.
Conditions use S3's conditional requests (``If-Match`` with the etag last seen,
``If-None-Match: *`` for a file that must not exist yet), so two replicas never overwrite each
other's work unseen.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

import anyio
from botocore.exceptions import ClientError

from troika_shared.files.base import ANY, CHUNK, Entry, Expected, FileChanged, check_name

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator
    from pathlib import Path

__all__ = ["S3Store"]

_PART = 8 << 20  # S3 takes parts of 5 MiB and more, but for the last


def _conditions(expected: Expected) -> dict[str, str]:
    if expected == ANY:
        return {}
    if expected is None:
        return {"IfNoneMatch": "*"}
    return {"IfMatch": expected}


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def _status(error: ClientError) -> int:
    return int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))


def _changed(error: ClientError) -> bool:
    """S3's answers to a condition that does not hold (or a conflicting concurrent write)."""
    return _status(error) in (409, 412) or _code(error) in (
        "PreconditionFailed", "ConditionalRequestConflict"
    )  # fmt: skip


class S3Store:
    """Task files as objects of ``bucket``, keys starting with ``prefix``.

    Args:
        client: An aiobotocore S3 client, open for as long as the store is used.
        bucket: The bucket (it must exist).
        prefix: The start of every key, e.g. ``tasks/``.
        multipart_bytes: Files larger than this go up as multipart uploads.
    """

    def __init__(
        self,
        client: Any,  # noqa: ANN401 - aiobotocore builds its clients at run time
        bucket: str,
        prefix: str = "",
        *,
        multipart_bytes: int = _PART,
    ) -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = prefix
        self.multipart_bytes = max(multipart_bytes, _PART)

    def _key(self, task_id: str, name: str) -> str:
        return f"{self.prefix}{task_id}/{check_name(task_id, name)}"

    async def list(self, task_id: str, folder: str = "") -> dict[str, Entry]:
        """Every file of the task (or of one of its folders, and below), by name."""
        check_name(task_id, folder or "x")
        start = f"{self.prefix}{task_id}/"
        found: dict[str, Entry] = {}
        paginator = self.client.get_paginator("list_objects_v2")
        within = f"{start}{folder}/" if folder else start
        async for page in paginator.paginate(Bucket=self.bucket, Prefix=within):
            for item in page.get("Contents", []):
                name = str(item["Key"])[len(start) :]
                found[name] = Entry(name, int(item["Size"]), str(item["ETag"]))
        return found

    async def read(self, task_id: str, name: str) -> AsyncGenerator[bytes, None]:
        """The object's body, a chunk at a time.

        Raises:
            FileNotFoundError: There is no such object.
        """
        try:
            answer = await self.client.get_object(Bucket=self.bucket, Key=self._key(task_id, name))
        except ClientError as exc:
            if _status(exc) == 404:
                raise FileNotFoundError(name) from None
            raise
        async with answer["Body"] as body:
            async for chunk in body.iter_chunks(CHUNK):
                yield chunk

    async def write(
        self, task_id: str, name: str, source: Path, *, expected: Expected = ANY
    ) -> Entry:
        """Uploads ``source`` if the object is still as ``expected``.

        Raises:
            FileChanged: It is not (nothing was written).
        """
        key = self._key(task_id, name)
        size = (await anyio.Path(source).stat()).st_size
        try:
            if size <= self.multipart_bytes:  # one part's worth: read at once, in a thread
                body = await anyio.Path(source).read_bytes()
                answer = await self.client.put_object(
                    Bucket=self.bucket, Key=key, Body=body, **_conditions(expected)
                )
                size = len(body)
            else:
                answer = await self._multipart(key, source, expected)
        except ClientError as exc:
            if _changed(exc):
                raise FileChanged(f"{name} changed since it was read") from None
            raise
        return Entry(name, size, str(answer["ETag"]))

    async def _current(self, key: str) -> str | None:
        """The object's etag now (``None``: there is none)."""
        try:
            head = await self.client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if _status(exc) == 404:
                return None
            raise
        return str(head["ETag"])

    async def _multipart(self, key: str, source: Path, expected: Expected) -> dict[str, Any]:
        # Checked first, so a stale write uploads nothing; the completion's own condition
        # then covers a change while the parts went up.
        if expected != ANY and await self._current(key) != expected:
            raise FileChanged(f"{key} changed since it was read")
        started = await self.client.create_multipart_upload(Bucket=self.bucket, Key=key)
        upload = started["UploadId"]
        try:
            parts = []
            async with await anyio.open_file(source, "rb") as body:
                number = 1
                while chunk := await body.read(_PART):
                    sent = await self.client.upload_part(
                        Bucket=self.bucket, Key=key, UploadId=upload, PartNumber=number,
                        Body=chunk,
                    )  # fmt: skip
                    parts.append({"PartNumber": number, "ETag": sent["ETag"]})
                    number += 1
            done: dict[str, Any] = await self.client.complete_multipart_upload(
                Bucket=self.bucket, Key=key, UploadId=upload,
                MultipartUpload={"Parts": parts}, **_conditions(expected),
            )  # fmt: skip
        except BaseException:
            with contextlib.suppress(ClientError):
                await self.client.abort_multipart_upload(
                    Bucket=self.bucket, Key=key, UploadId=upload
                )
            raise
        return done

    async def copy(self, task_id: str, name: str, to_task: str) -> Entry:
        """Copies the object to another task's files, inside the bucket (nothing passes
        through this process).

        Raises:
            FileNotFoundError: There is no such object.
        """
        source = self._key(task_id, name)
        try:
            head = await self.client.head_object(Bucket=self.bucket, Key=source)
            answer = await self.client.copy_object(
                Bucket=self.bucket, Key=self._key(to_task, name),
                CopySource={"Bucket": self.bucket, "Key": source},
            )  # fmt: skip
        except ClientError as exc:
            if _status(exc) == 404 or _code(exc) == "NoSuchKey":
                raise FileNotFoundError(name) from None
            raise
        return Entry(name, int(head["ContentLength"]), str(answer["CopyObjectResult"]["ETag"]))

    async def delete(self, task_id: str, name: str, *, expected: Expected = ANY) -> None:
        """Removes the object if it is still as ``expected`` (gone already: nothing to do).

        Raises:
            FileChanged: It changed since.
        """
        key = self._key(task_id, name)
        if expected is None:  # the writer saw no such file: only still none is as expected
            if await self._current(key) is not None:
                raise FileChanged(f"{name} was created since it was read")
            return
        try:
            await self.client.delete_object(
                Bucket=self.bucket, Key=key, **({} if expected == ANY else {"IfMatch": expected})
            )
        except ClientError as exc:
            if _status(exc) == 404:
                return
            if _changed(exc):
                raise FileChanged(f"{name} changed since it was read") from None
            raise

    async def delete_task(self, task_id: str) -> None:
        """Removes every object of the task."""
        names = list(await self.list(task_id))
        for start in range(0, len(names), 1000):
            batch = [{"Key": self._key(task_id, name)} for name in names[start : start + 1000]]
            await self.client.delete_objects(
                Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True}
            )
