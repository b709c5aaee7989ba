"""Storage URIs, and the pyarrow filesystems they name, with credentials from the environment only.

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
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import pyarrow.fs as pafs

from pipeline.redact import register_secret
from pipeline.storage.base import StorageError, first_line

AZURE_SCHEMES = ("abfs", "abfss", "az")
SCHEMES = (*AZURE_SCHEMES, "s3", "gs", "gcs")
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
_URI = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")


def is_uri(value: str) -> bool:
    """True for `scheme://...` (any scheme): local paths never contain `://`."""
    return bool(_URI.match(value))


def check_uri(value: str) -> str | None:
    """Why a URI cannot name an object or folder (None when it can): checked once, when the spec is read."""
    scheme = value.split("://", 1)[0].lower()
    if scheme not in SCHEMES:
        return f"unsupported storage URI scheme {scheme}://; use abfs://, az://, s3://, gs:// or a local path"
    bucket, _, key = split_uri(value)
    if not bucket or not key:
        return f"expected {scheme}://CONTAINER/PATH (a container or bucket, then a path in it), got {value!r}"
    return None


def split_uri(uri: str) -> tuple[str, str | None, str]:
    """`scheme://bucket[@account.host]/key` -> (bucket, account or None, key)."""
    parts = urlsplit(uri)
    bucket, _, host = parts.netloc.partition("@")
    account = host.split(".", 1)[0] if host else None
    return bucket, account, parts.path.strip("/")


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
