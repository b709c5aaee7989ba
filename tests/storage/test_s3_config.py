"""S3 settings from the environment: endpoint, region and keys, pure rules, no service needed."""

from __future__ import annotations

import pyarrow.fs as pafs
import pytest

from pipeline.redact import redact
from pipeline.storage import Location, S3Config, StorageError, storage_error

URI = "s3://bucket/in.jsonl"
SECRET = "s3-secret-for-tests-only"


@pytest.mark.parametrize("env, expected", [
    ({}, S3Config()),  # Amazon S3, the AWS SDK's default credential chain
    ({"AWS_ACCESS_KEY_ID": "AKIDTEST", "AWS_SECRET_ACCESS_KEY": SECRET, "AWS_SESSION_TOKEN": "tok-123"},
     S3Config("AKIDTEST", SECRET, "tok-123")),
    ({"AWS_ENDPOINT_URL": "http://127.0.0.1:9000"},  # MinIO
     S3Config(endpoint="127.0.0.1:9000", scheme="http", region="us-east-1")),
    ({"AWS_ENDPOINT_URL": "http://127.0.0.1:9", "AWS_ENDPOINT_URL_S3": "https://minio.internal/"},
     S3Config(endpoint="minio.internal", scheme="https", region="us-east-1")),  # the S3-specific one wins
    ({"AWS_ENDPOINT_URL": "https://acct.r2.cloudflarestorage.com", "AWS_REGION": "auto",
      "AWS_DEFAULT_REGION": "eu-west-1"},
     S3Config(endpoint="acct.r2.cloudflarestorage.com", scheme="https", region="auto")),
    ({"AWS_ENDPOINT_URL": "http://localhost:9000", "AWS_DEFAULT_REGION": "eu-west-1"},
     S3Config(endpoint="localhost:9000", scheme="http", region="eu-west-1")),
    ({"AWS_REGION": "eu-west-1"}, S3Config()),  # Amazon S3: the bucket's own region is looked up instead
])
def test_s3_config_from_env(env: dict[str, str], expected: S3Config) -> None:
    assert S3Config.from_env(env, URI) == expected


def test_endpoint_kwargs_for_pyarrow() -> None:
    config = S3Config.from_env({"AWS_ACCESS_KEY_ID": "AKIDTEST", "AWS_SECRET_ACCESS_KEY": SECRET,
                                "AWS_ENDPOINT_URL": "http://127.0.0.1:9000"}, URI)
    assert config.kwargs() == {"access_key": "AKIDTEST", "secret_key": SECRET, "endpoint_override": "127.0.0.1:9000",
                               "scheme": "http", "region": "us-east-1"}
    assert redact(f"failed with {SECRET}") == "failed with ***"  # registered as soon as it was read


@pytest.mark.parametrize("env, message", [
    ({"AWS_ACCESS_KEY_ID": "AKIDTEST"}, "set both AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or neither"),
    ({"AWS_ENDPOINT_URL": "127.0.0.1:9000"}, "AWS_ENDPOINT_URL: expected http(s)://HOST[:PORT]"),
    ({"AWS_ENDPOINT_URL_S3": "http://host:9000/bucket"}, "AWS_ENDPOINT_URL_S3: expected http(s)://HOST[:PORT]"),
    ({"AWS_ENDPOINT_URL": "ftp://host"}, "AWS_ENDPOINT_URL: expected"),
])
def test_bad_s3_settings_are_refused_in_one_line(env: dict[str, str], message: str) -> None:
    with pytest.raises(StorageError) as caught:
        S3Config.from_env(env, URI)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_refused_s3_credentials_name_the_aws_variables() -> None:
    error = OSError("When reading information for key 'in.jsonl' in bucket 'bucket': AWS Error ACCESS_DENIED "
                    "during HeadObject operation: No response body.\nAccessDenied")
    message = str(storage_error(error, Location(pafs.LocalFileSystem(), "bucket/in.jsonl", URI), "open"))
    assert message.startswith(f"{URI}: cannot open: the storage service refused the credentials; check AWS_ACCESS")
    assert "AZURE" not in message
