"""Objects and prefixes in object storage (Azure Blob / ADLS, S3, GCS): the `StoragePath` of a cloud input,
output or checkpoint, through pyarrow's filesystems.

Folders are implicit in object stores (a prefix exists once an object is under it), so nothing creates
them; containers and buckets are never created either: a mistyped name must fail, not make a new one.

Why a commit is one upload under the final name, not a temp name and a rename as on a disk: object stores
cannot rename. pyarrow's AzureFileSystem moves only on hierarchical-namespace accounts, and its copy (Copy
Blob From URL) is refused by Azure for private blobs. An upload is committed in one step instead (Put Block
List, CompleteMultipartUpload, GCS finalize), so an object's content is all or nothing. One catch on Azure:
pyarrow creates an empty blob when it opens the stream, so until the commit a 0-byte object with the final
name exists. An empty object is therefore never a committed file (`files`), and it is a leftover a later
run deletes, as `.tmp` objects are (`leftovers`).
"""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import IO, Any

import pyarrow as pa
import pyarrow.fs as pafs

from pipeline.crashpoints import crash_point
from pipeline.storage.base import (
    NO_POINTS,
    CommitPoints,
    OutputWriteError,
    StorageError,
    Writer,
    first_line,
    in_walk_order,
)
from pipeline.storage.config import (
    AZURE_SCHEMES,
    AzureConfig,
    S3Config,
    azure_filesystem,
    check_uri,
    s3_filesystem,
    split_uri,
)

READ_BUFFER = 1 << 20
READ_THREADS = 8  # small objects (parts, job.json) read one by one would be all round trips


@dataclass(frozen=True, eq=False)
class Location:
    """An object or folder in object storage: the filesystem, its path there, and the URI for messages."""

    fs: pafs.FileSystem
    path: str  # the filesystem's own path: "container/dir/name"
    uri: str

    def __str__(self) -> str:
        return self.uri

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]

    def __truediv__(self, name: str) -> Location:
        return Location(self.fs, f"{self.path}/{name}", f"{self.uri.rstrip('/')}/{name}")

    @property
    def container(self) -> Location:
        bucket = self.path.split("/", 1)[0]
        return Location(self.fs, bucket, self.uri[: self.uri.index("://") + 3] + bucket)

    def local_path(self) -> None:
        return None

    @property
    def parallel_reads(self) -> int:
        return READ_THREADS

    # ---- reading

    def info(self) -> pafs.FileInfo:
        try:
            return self.fs.get_file_info(self.path)
        except OSError as exc:
            raise storage_error(exc, self, "look up") from None

    def exists(self) -> bool:
        return bool(self.info().type != pafs.FileType.NotFound)

    def files(self) -> list[Location]:
        """Committed objects directly under this prefix: not empty (see the module docstring), not .tmp."""
        infos = [i for i in self._listing() if i.size and not i.base_name.endswith(".tmp")]
        return [self / i.base_name for i in sorted(infos, key=lambda i: i.base_name)]

    def leftovers(self) -> list[Location]:
        """Empty objects (an upload cut short on Azure) and .tmp objects directly under this prefix."""
        return [self / i.base_name for i in self._listing() if i.base_name.endswith(".tmp") or not i.size]

    def _listing(self) -> list[pafs.FileInfo]:
        """The files directly in this folder (none when it does not exist)."""
        try:
            infos = self.fs.get_file_info(pafs.FileSelector(self.path, allow_not_found=True))
        except OSError as exc:
            raise storage_error(exc, self, "list") from None
        return [i for i in infos if i.type == pafs.FileType.File]

    def walk_files(self) -> Iterator[str]:
        """One listing call (names and sizes only, never content), then sorted into walk order."""
        try:
            infos = self.fs.get_file_info(pafs.FileSelector(self.path, recursive=True, allow_not_found=True))
        except OSError as exc:
            raise storage_error(exc, self, "list") from None
        start = len(self.path.rstrip("/")) + 1
        yield from in_walk_order(i.path[start:] for i in infos if i.type == pafs.FileType.File)

    def size_and_head(self, count: int) -> tuple[int, bytes]:
        """The object's size and its first `count` bytes (a ranged read): enough to check it before an upload."""
        try:
            with self.fs.open_input_file(self.path) as handle:
                size = handle.size()
                return size, bytes(handle.read(min(count, size)))
        except OSError as exc:
            raise storage_error(exc, self, "read") from None

    def read_all(self) -> bytes:
        data = self.read_or_none()
        if data is None:
            raise StorageError(f"{self.uri}: cannot read: not found (it was there when the run listed it)")
        return data

    def open_stream(self) -> IO[bytes]:
        try:
            return io.BufferedReader(self.fs.open_input_stream(self.path), READ_BUFFER)
        except OSError as exc:
            raise storage_error(exc, self, "open") from None

    def read_or_none(self) -> bytes | None:
        try:
            with self.fs.open_input_stream(self.path, compression=None) as stream:
                return bytes(stream.read())
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise storage_error(exc, self, "read") from None

    read_bytes = read_or_none  # Location's name for it before StoragePath (a local path's read_bytes raises)

    def arrow(self) -> tuple[pafs.FileSystem, str]:
        return self.fs, self.path

    # ---- writing

    def make_folder(self) -> None:
        """Prefixes are implicit: nothing to make."""

    def check_writable(self) -> None:
        """Fail early, in one line, on a missing container or refused credentials. Writing is tested by the
        lock, the first object a run writes (a separate probe would cost a write and a delete per run)."""
        container = self.container
        if not container.exists():
            raise StorageError(f"{self}: container or bucket {container.name!r} does not exist; create it "
                               "or fix [output] path")

    def commit(self, write: Writer, points: CommitPoints = NO_POINTS) -> None:
        """Serialize in memory, then upload in one piece: nothing is committed until the whole object is sent."""
        buffer = pa.BufferOutputStream()
        write(buffer)
        point = points.uploading
        before_commit = (lambda: crash_point(point)) if point is not None else None
        try:
            self.write_bytes(buffer.getvalue(), before_commit)
        except OSError as exc:
            raise OutputWriteError(f"{self}: could not upload ({first_line(exc)}); nothing partial counts as done, "
                                   "run again") from None

    def create_exclusive(self, data: bytes) -> bool:
        """Best effort: pyarrow exposes no create-if-absent, so write, then read back. Two runs started
        within the same moment can both see their own token; run one job per output."""
        if self.read_or_none() is not None:
            return False
        try:
            self.write_bytes(data)
        except OSError as exc:
            raise StorageError(f"{self}: the output is not writable ({first_line(exc)}); check the credentials' "
                               "role (e.g. Storage Blob Data Contributor) or fix [output] path") from None
        return self.read_or_none() == data

    def write_bytes(self, data: Any, before_commit: Callable[[], None] | None = None) -> None:
        """One object, one upload, committed by `close()`. Raises OSError: callers decide what it means.

        `before_commit` runs with the bytes sent but not committed (a test hook for crashes)."""
        stream = self.fs.open_output_stream(self.path, compression=None)
        try:
            stream.write(data)
            if before_commit is not None:
                before_commit()
        except BaseException:
            _discard(stream, self)
            raise
        stream.close()

    def delete(self) -> None:
        try:
            self.fs.delete_file(self.path)
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise storage_error(exc, self, "delete") from None


def _discard(stream: Any, location: Location) -> None:
    """After a failed write: closing commits what was staged (pyarrow has no abort), so close, then delete.

    If the service is gone for both, an empty object is a leftover the next run deletes; a truncated one
    fails the next run's id scan by name, like a damaged local part."""
    for step in (stream.close, lambda: location.fs.delete_file(location.path)):
        with contextlib.suppress(OSError):
            step()


def locate(uri: str, env: Mapping[str, str] | None = None) -> Location:
    """The filesystem and path for a storage URI, with credentials from the environment."""
    env = os.environ if env is None else env
    problem = check_uri(uri)
    if problem:
        raise StorageError(f"{uri}: {problem}")
    scheme = uri.split("://", 1)[0].lower()
    bucket, account, key = split_uri(uri)
    if scheme in AZURE_SCHEMES:
        return Location(azure_filesystem(AzureConfig.from_env(account, env, uri)), f"{bucket}/{key}", uri)
    if scheme == "s3":
        return Location(s3_filesystem(S3Config.from_env(env, uri), bucket, uri), f"{bucket}/{key}", uri)
    try:
        fs, path = pafs.FileSystem.from_uri(f"{scheme.replace('gcs', 'gs')}://{bucket}/{key}")
    except (OSError, ValueError) as exc:
        raise StorageError(f"{uri}: cannot reach the storage service: {first_line(exc)}") from None
    return Location(fs, path, uri)


# --------------------------------------------------------------------------- errors

_REFUSED = ("AuthorizationFailure", "AuthenticationFailed", "AuthorizationPermissionMismatch", "InvalidAuthentication",
            "NoAuthenticationInformation", "403 ", "401 ", "AccessDenied", "InvalidAccessKeyId",
            "SignatureDoesNotMatch", "credential")
_NO_CONTAINER = ("ContainerNotFound", "The specified container does not exist", "FilesystemNotFound",
                 "NoSuchBucket")
_AZURE_HINT = "check AZURE_STORAGE_* (or the Entra ID role, e.g. Storage Blob Data Contributor)"
_CREDENTIAL_HINTS = {
    **dict.fromkeys(AZURE_SCHEMES, _AZURE_HINT),
    "s3": "check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (or the role's S3 permissions) and AWS_ENDPOINT_URL",
    **dict.fromkeys(("gs", "gcs"), "check GOOGLE_APPLICATION_CREDENTIALS (or the account's Storage roles)"),
}


def storage_error(exc: BaseException, location: Location, doing: str) -> StorageError:
    """One line a person can act on, from pyarrow's multi-line service errors."""
    text = str(exc)
    if isinstance(exc, FileNotFoundError) or any(marker in text for marker in _NO_CONTAINER):
        reason = "not found (check the container or bucket and the path)"
    elif any(marker in text for marker in _REFUSED):
        scheme = location.uri.split("://", 1)[0].lower()
        reason = f"the storage service refused the credentials; {_CREDENTIAL_HINTS.get(scheme, _AZURE_HINT)}"
    else:
        reason = first_line(exc)
    return StorageError(f"{location.uri}: cannot {doing}: {reason}")
