"""Object storage: a URI as a pyarrow FileSystem and a path, and the few operations outputs need.

Folders are implicit in object stores (a prefix exists once an object is under it), so nothing creates
them; containers and buckets are never created either: a mistyped name must fail, not make a new one.

URIs (the `[input] path` / `[output] path` of a job spec):

    abfs://container/dir/file.jsonl        Azure Blob / ADLS Gen2 (abfss:// and az:// alike)
    abfs://container@account.dfs.core.windows.net/dir/file.jsonl      the account named in the URI
    s3://bucket/key                        Amazon S3, or an S3-compatible store (MinIO, R2, ...) at AWS_ENDPOINT_URL
    gs://bucket/key                        through pyarrow's own GCS configuration

Azure credentials come from the environment only (a job spec may not hold secrets):

    AZURE_STORAGE_CONNECTION_STRING   AccountName + AccountKey or SharedAccessSignature, optional
                                      BlobEndpoint; "UseDevelopmentStorage=true" means Azurite on :10000
    AZURE_STORAGE_ACCOUNT_NAME        the account, unless the URI or the connection string names it
    AZURE_STORAGE_ACCOUNT_KEY         shared key; or AZURE_STORAGE_SAS_TOKEN
    (no key, no SAS)                  Entra ID: DefaultAzureCredential (AZURE_CLIENT_ID/TENANT_ID/CLIENT_SECRET,
                                      workload identity, managed identity, Azure CLI), as pyarrow does
    AZURE_STORAGE_BLOB_ENDPOINT       endpoint override: http://127.0.0.1:10000/devstoreaccount1 (Azurite,
                                      path style) or https://ACCOUNT.blob.core.chinacloudapi.cn (other clouds)

The az CLI's names AZURE_STORAGE_ACCOUNT and AZURE_STORAGE_KEY are read too.

S3 settings come from the AWS SDK's standard environment variables (never from the spec or the URI):

    AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY   both or neither; AWS_SESSION_TOKEN with them for temporary keys.
                                      Neither: the AWS SDK's default chain (AWS_PROFILE and ~/.aws, web
                                      identity, the instance or task role)
    AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL      an S3-compatible endpoint, e.g. http://127.0.0.1:9000 (MinIO) or
                                      https://ACCOUNT.r2.cloudflarestorage.com; the first one set wins; path-style
                                      addressing. Region: AWS_REGION or AWS_DEFAULT_REGION, else us-east-1
    (no endpoint)                     Amazon S3 itself, in the bucket's own region (looked up, as pyarrow does)

Keys are registered with `redact` as soon as they are read, so no message or log line can carry them.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import IO, Any
from urllib.parse import urlsplit

import pyarrow.fs as pafs

from pipeline.errors import PipelineError
from pipeline.redact import redact, register_secret

AZURE_SCHEMES = ("abfs", "abfss", "az")
SCHEMES = (*AZURE_SCHEMES, "s3", "gs", "gcs")
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
_URI = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
READ_BUFFER = 1 << 20


class StorageError(PipelineError):
    """Object storage refused or could not find something: a setup problem, reported in one line (exit 2)."""


def is_uri(value: str) -> bool:
    """True for `scheme://...` (any scheme): local paths never contain `://`."""
    return bool(_URI.match(value))


def check_uri(value: str) -> str | None:
    """Why a URI cannot name an object or folder (None when it can): checked once, when the spec is read."""
    scheme = value.split("://", 1)[0].lower()
    if scheme not in SCHEMES:
        return f"unsupported storage URI scheme {scheme}://; use abfs://, az://, s3://, gs:// or a local path"
    bucket, _, key = _split(value)
    if not bucket or not key:
        return f"expected {scheme}://CONTAINER/PATH (a container or bucket, then a path in it), got {value!r}"
    return None


def _split(uri: str) -> tuple[str, str | None, str]:
    """`scheme://bucket[@account.host]/key` -> (bucket, account or None, key)."""
    parts = urlsplit(uri)
    bucket, _, host = parts.netloc.partition("@")
    account = host.split(".", 1)[0] if host else None
    return bucket, account, parts.path.strip("/")


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

    def info(self) -> pafs.FileInfo:
        try:
            return self.fs.get_file_info(self.path)
        except OSError as exc:
            raise storage_error(exc, self, "look up") from None

    def exists(self) -> bool:
        return bool(self.info().type != pafs.FileType.NotFound)

    def files(self) -> list[pafs.FileInfo]:
        """The files directly in this folder (none when it does not exist)."""
        try:
            infos = self.fs.get_file_info(pafs.FileSelector(self.path, allow_not_found=True))
        except OSError as exc:
            raise storage_error(exc, self, "list") from None
        return [i for i in infos if i.type == pafs.FileType.File]

    def child(self, info: pafs.FileInfo) -> Location:
        return self / info.base_name

    def tree(self) -> list[str]:
        """Paths (relative to this folder) of every file under it, at any depth, in listing order; none
        when it does not exist. One listing call: names and sizes only, never content."""
        try:
            infos = self.fs.get_file_info(pafs.FileSelector(self.path, recursive=True, allow_not_found=True))
        except OSError as exc:
            raise storage_error(exc, self, "list") from None
        start = len(self.path.rstrip("/")) + 1
        return [i.path[start:] for i in infos if i.type == pafs.FileType.File]

    def size_and_head(self, count: int) -> tuple[int, bytes]:
        """The object's size and its first `count` bytes (a ranged read): enough to check it before an upload."""
        try:
            with self.fs.open_input_file(self.path) as handle:
                size = handle.size()
                return size, bytes(handle.read(min(count, size)))
        except OSError as exc:
            raise storage_error(exc, self, "read") from None

    def read_all(self) -> bytes:
        """The whole (small) object; StorageError when it is gone."""
        data = self.read_bytes()
        if data is None:
            raise StorageError(f"{self.uri}: cannot read: not found (it was there when the run listed it)")
        return data

    def open_input(self) -> IO[bytes]:
        """A buffered, streaming reader; `.gz` objects are decompressed on the way."""
        try:
            return io.BufferedReader(self.fs.open_input_stream(self.path), READ_BUFFER)
        except OSError as exc:
            raise storage_error(exc, self, "open") from None

    def read_bytes(self) -> bytes | None:
        """The whole (small) object, or None when it does not exist."""
        try:
            with self.fs.open_input_stream(self.path, compression=None) as stream:
                return bytes(stream.read())
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise storage_error(exc, self, "read") from None

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
    bucket, account, key = _split(uri)
    if scheme in AZURE_SCHEMES:
        return Location(azure_filesystem(AzureConfig.from_env(account, env, uri)), f"{bucket}/{key}", uri)
    if scheme == "s3":
        return Location(s3_filesystem(S3Config.from_env(env, uri), bucket, uri), f"{bucket}/{key}", uri)
    try:
        fs, path = pafs.FileSystem.from_uri(f"{scheme.replace('gcs', 'gs')}://{bucket}/{key}")
    except (OSError, ValueError) as exc:
        raise StorageError(f"{uri}: cannot reach the storage service: {first_line(exc)}") from None
    return Location(fs, path, uri)


# --------------------------------------------------------------------------- Azure configuration


@dataclass(frozen=True)
class AzureConfig:
    """What pyarrow's AzureFileSystem needs. `key` and `sas` are secrets (registered for redaction)."""

    account: str
    key: str | None = None
    sas: str | None = None
    scheme: str | None = None  # http for Azurite; None = https
    blob_authority: str | None = None  # "host:port" (path style) or ".blob.<suffix>"
    dfs_authority: str | None = None

    @classmethod
    def from_env(cls, account: str | None, env: Mapping[str, str], uri: str) -> AzureConfig:
        connection = env.get("AZURE_STORAGE_CONNECTION_STRING")
        config = (_from_connection_string(connection) if connection
                  else _from_variables(account, env))
        if config is None:
            raise StorageError(f"{uri}: no storage account: set AZURE_STORAGE_ACCOUNT_NAME (or "
                               "AZURE_STORAGE_CONNECTION_STRING), or write abfs://CONTAINER@ACCOUNT"
                               ".dfs.core.windows.net/PATH")
        if account and account != config.account:
            raise StorageError(f"{uri}: the URI names account {account!r} but the environment's credentials are "
                               f"for {config.account!r}; fix the URI or AZURE_STORAGE_* variables")
        return config

    def kwargs(self) -> dict[str, str]:
        out = {"account_name": self.account, "account_key": self.key, "sas_token": self.sas,
               "blob_storage_scheme": self.scheme, "dfs_storage_scheme": self.scheme,
               "blob_storage_authority": self.blob_authority, "dfs_storage_authority": self.dfs_authority}
        return {k: v for k, v in out.items() if v}


def _from_variables(account: str | None, env: Mapping[str, str]) -> AzureConfig | None:
    name = env.get("AZURE_STORAGE_ACCOUNT_NAME") or env.get("AZURE_STORAGE_ACCOUNT") or account
    if not name:
        return None
    key = env.get("AZURE_STORAGE_ACCOUNT_KEY") or env.get("AZURE_STORAGE_KEY") or None
    sas = (env.get("AZURE_STORAGE_SAS_TOKEN") or "").lstrip("?") or None
    endpoint = env.get("AZURE_STORAGE_BLOB_ENDPOINT")
    return _with_endpoint(AzureConfig(name, key, None if key else sas), endpoint, "AZURE_STORAGE_BLOB_ENDPOINT")


def _from_connection_string(text: str) -> AzureConfig:
    register_secret(text)
    fields = dict(part.split("=", 1) for part in text.split(";") if "=" in part)
    if fields.get("UseDevelopmentStorage", "").lower() == "true":
        fields = {"AccountName": AZURITE_ACCOUNT, "AccountKey": AZURITE_KEY,
                  "BlobEndpoint": f"http://127.0.0.1:10000/{AZURITE_ACCOUNT}"}
    account = fields.get("AccountName")
    if not account:
        raise StorageError("AZURE_STORAGE_CONNECTION_STRING: no AccountName=...; copy the connection string "
                           "from the storage account's Access keys page")
    config = AzureConfig(account, fields.get("AccountKey"), (fields.get("SharedAccessSignature") or "").lstrip("?")
                         or None)
    if "BlobEndpoint" in fields:
        return _with_endpoint(config, fields["BlobEndpoint"], "AZURE_STORAGE_CONNECTION_STRING BlobEndpoint")
    suffix = fields.get("EndpointSuffix")
    scheme = fields.get("DefaultEndpointsProtocol")
    return AzureConfig(config.account, config.key, config.sas, scheme if scheme == "http" else None,
                       f".blob.{suffix}" if suffix else None, f".dfs.{suffix}" if suffix else None)


def _with_endpoint(config: AzureConfig, endpoint: str | None, source: str) -> AzureConfig:
    """Apply a blob endpoint URL: path style (emulators) or ACCOUNT.blob.<suffix> (other clouds)."""
    if not endpoint:
        return config
    parts = urlsplit(endpoint)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.netloc:
        raise StorageError(f"{source}: expected http(s)://HOST[:PORT]/ACCOUNT or https://ACCOUNT.blob.SUFFIX, "
                           f"got {endpoint!r}")
    path_account = parts.path.strip("/")
    if path_account:  # emulator: http://127.0.0.1:10000/devstoreaccount1, the same port serves both APIs
        if path_account != config.account:
            raise StorageError(f"{source}: names account {path_account!r}, credentials are for {config.account!r}")
        return AzureConfig(config.account, config.key, config.sas, scheme, parts.netloc, parts.netloc)
    prefix = f"{config.account}.blob."
    if not parts.netloc.startswith(prefix):
        raise StorageError(f"{source}: expected https://{config.account}.blob.SUFFIX, got {endpoint!r}")
    suffix = parts.netloc[len(prefix):]
    return AzureConfig(config.account, config.key, config.sas, scheme, f".blob.{suffix}", f".dfs.{suffix}")


def azure_filesystem(config: AzureConfig) -> pafs.FileSystem:
    for secret in (config.key, config.sas):
        register_secret(secret)
    try:
        return pafs.AzureFileSystem(**config.kwargs())
    except (OSError, ValueError, TypeError) as exc:
        raise StorageError(f"abfs://{config.account}: cannot set up Azure storage access: "
                           f"{first_line(exc)}") from None


# --------------------------------------------------------------------------- S3 configuration


@dataclass(frozen=True)
class S3Config:
    """What pyarrow's S3FileSystem needs. `secret_key` and `session_token` are secrets (registered for redaction).

    Built here rather than by `FileSystem.from_uri`, so that the endpoint variables work with every pyarrow
    version (older ones ignore AWS_ENDPOINT_URL) and the same environment mapping decides everything."""

    access_key: str | None = None
    secret_key: str | None = None
    session_token: str | None = None
    endpoint: str | None = None  # "host[:port]" of an S3-compatible store; None = Amazon S3
    scheme: str | None = None  # http or https, with an endpoint
    region: str | None = None  # with an endpoint; on Amazon S3 the bucket's region is looked up

    @classmethod
    def from_env(cls, env: Mapping[str, str], uri: str) -> S3Config:
        key, secret = env.get("AWS_ACCESS_KEY_ID") or None, env.get("AWS_SECRET_ACCESS_KEY") or None
        token = env.get("AWS_SESSION_TOKEN") or None
        for value in (secret, token):
            register_secret(value)
        if bool(key) != bool(secret):
            raise StorageError(f"{uri}: set both AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or neither (then the "
                               "AWS SDK's default chain: AWS_PROFILE, web identity, the instance role)")
        source = "AWS_ENDPOINT_URL_S3" if env.get("AWS_ENDPOINT_URL_S3") else "AWS_ENDPOINT_URL"
        endpoint = env.get(source)
        if not endpoint:
            return cls(key, secret, token if key else None)
        parts = urlsplit(endpoint.strip())
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https") or not parts.netloc or parts.path.strip("/") or parts.query:
            raise StorageError(f"{source}: expected http(s)://HOST[:PORT] (an S3-compatible endpoint), got "
                               f"{endpoint!r}")
        region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1"
        return cls(key, secret, token if key else None, parts.netloc, scheme, region)

    def kwargs(self) -> dict[str, str]:
        out = {"access_key": self.access_key, "secret_key": self.secret_key, "session_token": self.session_token,
               "endpoint_override": self.endpoint, "scheme": self.scheme, "region": self.region}
        return {k: v for k, v in out.items() if v}


def s3_filesystem(config: S3Config, bucket: str, uri: str) -> pafs.FileSystem:
    """An upload is committed by its PutObject (or CompleteMultipartUpload, past pyarrow's part size): no object
    shows before `close()`. Delayed open (pyarrow >= 21) makes a small part one PutObject instead of starting a
    multipart upload at open, which a kill -9 would leave behind (invisible, but kept until a bucket lifecycle
    rule aborts it) and which costs two more round trips."""
    kwargs: dict[str, Any] = config.kwargs()
    if config.endpoint is None:
        # Amazon S3 answers only in the bucket's own region; a failed look-up (no such bucket, no network)
        # is left to the first real request, which reports it in one line like any other.
        with contextlib.suppress(OSError):
            kwargs["region"] = pafs.resolve_s3_region(bucket)
    try:
        try:
            return pafs.S3FileSystem(**kwargs, allow_delayed_open=True)
        except TypeError:  # pyarrow < 21
            return pafs.S3FileSystem(**kwargs)
    except (OSError, ValueError, TypeError) as exc:
        raise StorageError(f"{uri}: cannot set up S3 access: {first_line(exc)}") from None


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


def first_line(exc: BaseException) -> str:
    """The first line of an exception's text, redacted: service errors run to many lines."""
    line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return redact(line[:300])
