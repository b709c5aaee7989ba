"""Storage URIs and Azure credentials from the environment: pure rules, no service needed."""

from __future__ import annotations

import pytest

from pipeline.redact import redact
from pipeline.storage import (
    AZURITE_KEY,
    AzureConfig,
    StorageError,
    check_uri,
    is_uri,
    locate,
    storage_error,
)


@pytest.mark.parametrize("value, expected", [
    ("abfs://c/in.jsonl", True), ("az://c/x", True), ("s3://b/k", True), ("ftp://h/x", True),
    ("/data/in.jsonl", False), ("data/in.jsonl", False), ("C:\\data\\in.jsonl", False), ("abfs:/c/x", False),
])
def test_is_uri(value: str, expected: bool) -> None:
    assert is_uri(value) is expected


@pytest.mark.parametrize("value, problem", [
    ("abfs://c/in.jsonl", None),
    ("abfss://c@acct.dfs.core.windows.net/d/in.jsonl", None),
    ("gs://bucket/key.parquet", None),
    ("ftp://host/x", "unsupported storage URI scheme ftp://"),
    ("abfs://container", "expected abfs://CONTAINER/PATH"),
    ("s3:///key", "expected s3://CONTAINER/PATH"),
])
def test_check_uri(value: str, problem: str | None) -> None:
    found = check_uri(value)
    assert found is None if problem is None else problem in (found or "")


KEY = "c2VjcmV0LWtleS1mb3ItdGVzdHMtb25seQ=="
URI = "abfs://c/x.jsonl"


@pytest.mark.parametrize("account, env, expected", [
    (None, {"AZURE_STORAGE_ACCOUNT_NAME": "acct", "AZURE_STORAGE_ACCOUNT_KEY": KEY},
     AzureConfig("acct", KEY)),
    (None, {"AZURE_STORAGE_ACCOUNT": "acct", "AZURE_STORAGE_KEY": KEY},  # the az CLI's names
     AzureConfig("acct", KEY)),
    ("acct", {}, AzureConfig("acct")),  # named in the URI, no key: Entra ID (DefaultAzureCredential)
    (None, {"AZURE_STORAGE_ACCOUNT_NAME": "acct", "AZURE_STORAGE_SAS_TOKEN": "?sv=1&sig=abc"},
     AzureConfig("acct", sas="sv=1&sig=abc")),
    (None, {"AZURE_STORAGE_ACCOUNT_NAME": "devstoreaccount1", "AZURE_STORAGE_ACCOUNT_KEY": KEY,
            "AZURE_STORAGE_BLOB_ENDPOINT": "http://127.0.0.1:10000/devstoreaccount1"},
     AzureConfig("devstoreaccount1", KEY, None, "http", "127.0.0.1:10000", "127.0.0.1:10000")),
    (None, {"AZURE_STORAGE_ACCOUNT_NAME": "acct",
            "AZURE_STORAGE_BLOB_ENDPOINT": "https://acct.blob.core.chinacloudapi.cn"},
     AzureConfig("acct", None, None, "https", ".blob.core.chinacloudapi.cn", ".dfs.core.chinacloudapi.cn")),
    (None, {"AZURE_STORAGE_CONNECTION_STRING": f"DefaultEndpointsProtocol=https;AccountName=acct;AccountKey={KEY};"
                                               "EndpointSuffix=core.usgovcloudapi.net"},
     AzureConfig("acct", KEY, None, None, ".blob.core.usgovcloudapi.net", ".dfs.core.usgovcloudapi.net")),
    (None, {"AZURE_STORAGE_CONNECTION_STRING": f"AccountName=devstoreaccount1;AccountKey={KEY};"
                                               "BlobEndpoint=http://localhost:10000/devstoreaccount1;"},
     AzureConfig("devstoreaccount1", KEY, None, "http", "localhost:10000", "localhost:10000")),
    (None, {"AZURE_STORAGE_CONNECTION_STRING": "UseDevelopmentStorage=true"},
     AzureConfig("devstoreaccount1", AZURITE_KEY, None, "http", "127.0.0.1:10000", "127.0.0.1:10000")),
])
def test_azure_config_from_env(account: str | None, env: dict[str, str], expected: AzureConfig) -> None:
    assert AzureConfig.from_env(account, env, URI) == expected


@pytest.mark.parametrize("account, env, message", [
    (None, {}, "no storage account: set AZURE_STORAGE_ACCOUNT_NAME"),
    ("other", {"AZURE_STORAGE_CONNECTION_STRING": f"AccountName=acct;AccountKey={KEY}"},
     "the URI names account 'other' but the environment's credentials are for 'acct'"),
    ("other", {"AZURE_STORAGE_ACCOUNT_NAME": "acct", "AZURE_STORAGE_ACCOUNT_KEY": KEY}, "names account 'other'"),
    (None, {"AZURE_STORAGE_CONNECTION_STRING": f"AccountKey={KEY}"}, "no AccountName"),
    (None, {"AZURE_STORAGE_ACCOUNT_NAME": "acct", "AZURE_STORAGE_BLOB_ENDPOINT": "127.0.0.1:10000"},
     "AZURE_STORAGE_BLOB_ENDPOINT: expected"),
    (None, {"AZURE_STORAGE_ACCOUNT_NAME": "acct", "AZURE_STORAGE_BLOB_ENDPOINT": "http://h:1/other"},
     "names account 'other'"),
])
def test_azure_config_errors_name_the_variable(account: str | None, env: dict[str, str], message: str) -> None:
    with pytest.raises(StorageError, match=message):
        AzureConfig.from_env(account, env, URI)


def test_keys_read_from_the_environment_are_redacted() -> None:
    secret = "bG9jYXRlLXRlc3Qta2V5LW5ldmVyLXByaW50ZWQ="
    location = locate("abfs://c/dir/in.jsonl", {"AZURE_STORAGE_ACCOUNT_NAME": "acct",
                                                "AZURE_STORAGE_ACCOUNT_KEY": secret})
    assert redact(f"key={secret}") == "key=***"
    assert (location.path, str(location), location.name) == ("c/dir/in.jsonl", "abfs://c/dir/in.jsonl", "in.jsonl")
    child = location / "results"
    assert (child.path, child.uri, child.container.path) == ("c/dir/in.jsonl/results",
                                                             "abfs://c/dir/in.jsonl/results", "c")


@pytest.mark.parametrize("error, reason", [
    (FileNotFoundError("Path does not exist 'c/x'"), "not found"),
    (OSError("GetProperties failed.\nAzure Error: [AuthorizationFailure] 403 Server failed"),
     "refused the credentials"),
    (OSError("UploadFrom failed. Azure Error: [ContainerNotFound] 404 The specified container does not exist."),
     "not found"),
    (OSError("Timeout was reached\nsecond line"), "Timeout was reached"),
])
def test_storage_errors_are_one_line(error: OSError, reason: str) -> None:
    location = locate("abfs://c/x.jsonl", {"AZURE_STORAGE_ACCOUNT_NAME": "acct"})
    message = str(storage_error(error, location, "read"))
    assert message.startswith("abfs://c/x.jsonl: cannot read: ")
    assert reason in message
    assert "\n" not in message
