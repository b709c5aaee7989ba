"""Storage fixtures: Azurite (Azure Storage's emulator, from npm) on a free port, and a fresh container per test;
moto's standalone S3 server (the `dev` extra's moto[server]) on a free port, and a fresh bucket per test.

`make storage-emulator` installs Azurite into .cache/azurite; AZURITE_BIN points elsewhere. Without it the
tests skip on a workstation and fail in CI (CI=true), where a skipped storage suite would hide a regression.
The S3 tests do the same when moto's server cannot be imported or started.

Timing note: now and then Azurite cuts short its 404 to the lease release pyarrow sends after deleting a
blob; the Azure SDK then waits ~6 s and retries, so a test may take 7 s longer. Real Azure does not.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

from pipeline.emulator.config import EmulatorConfig
from pipeline.emulator.server import EmulatorThread
from pipeline.storage import AZURITE_ACCOUNT, AZURITE_KEY

ROOT = Path(__file__).resolve().parents[2]
LOCAL_AZURITE = ROOT / ".cache" / "azurite" / "node_modules" / ".bin" / "azurite-blob"
LISTENING = re.compile(r"listens on https?://[^:]+:(\d+)")
MOTO_LISTENING = re.compile(r"Running on http://127\.0\.0\.1:(\d+)")
STORAGE_VARS = ("AZURE_STORAGE_CONNECTION_STRING", "AZURE_STORAGE_ACCOUNT_NAME", "AZURE_STORAGE_ACCOUNT",
                "AZURE_STORAGE_ACCOUNT_KEY", "AZURE_STORAGE_KEY", "AZURE_STORAGE_SAS_TOKEN",
                "AZURE_STORAGE_BLOB_ENDPOINT")


@dataclass
class Azurite:
    port: int
    fs: pafs.FileSystem

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}/{AZURITE_ACCOUNT}"

    def env(self, key: str = AZURITE_KEY) -> dict[str, str]:
        """The variables a run needs: account, key and the emulator's endpoint."""
        return {"AZURE_STORAGE_ACCOUNT_NAME": AZURITE_ACCOUNT, "AZURE_STORAGE_ACCOUNT_KEY": key,
                "AZURE_STORAGE_BLOB_ENDPOINT": self.endpoint}


def azurite_binary() -> str | None:
    configured = os.environ.get("AZURITE_BIN")
    if configured:
        return configured if Path(configured).exists() or shutil.which(configured) else None
    if LOCAL_AZURITE.exists():
        return str(LOCAL_AZURITE)
    return shutil.which("azurite-blob")


def skip_or_fail(message: str) -> NoReturn:
    """Skip on a workstation; fail under CI=true, so CI never passes the storage tests silently."""
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(message)
    pytest.skip(message)


def missing_azurite() -> None:
    skip_or_fail("azurite-blob is not installed: run `make storage-emulator` (needs Node.js and npm) "
                 "or set AZURITE_BIN")


def port_from_output(proc: subprocess.Popen[str], listening: re.Pattern[str], timeout: float) -> tuple[int | None, str]:
    """The port a server prints once it listens (we ask for port 0: any free one), or None and its output
    if it exits or stays silent first; its output is drained until it exits."""
    found: dict[str, int] = {}
    ready = threading.Event()
    seen: list[str] = []

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            seen.append(line)
            match = listening.search(line)
            if match and not ready.is_set():
                found["port"] = int(match.group(1))
                ready.set()
        ready.set()  # exited without listening

    threading.Thread(target=read, daemon=True).start()
    if not ready.wait(timeout) or "port" not in found:
        proc.kill()
        return None, "".join(seen)[-2000:]
    return found["port"], ""


def wait_for_port(proc: subprocess.Popen[str], timeout: float) -> int:
    port, output = port_from_output(proc, LISTENING, timeout)
    if port is None:
        raise RuntimeError(f"Azurite did not start: {output}")
    return port


@contextlib.contextmanager
def serving(proc: subprocess.Popen[str], wait: Callable[[subprocess.Popen[str], float], int],
            make_fs: Callable[[int], pafs.FileSystem]) -> Iterator[tuple[int, pafs.FileSystem]]:
    """A storage server started as `proc`: its port (read by `wait`) and a filesystem on it once it answers
    requests, not only listens; the server is stopped on the way out."""
    try:
        port = wait(proc, 30)
        fs = make_fs(port)
        fs.get_file_info(pafs.FileSelector("", allow_not_found=True))
        yield port, fs
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def azurite_fs(port: int) -> pafs.FileSystem:
    authority = f"127.0.0.1:{port}"
    return pafs.AzureFileSystem(account_name=AZURITE_ACCOUNT, account_key=AZURITE_KEY,
                                blob_storage_authority=authority, dfs_storage_authority=authority,
                                blob_storage_scheme="http", dfs_storage_scheme="http")


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Azurite]:
    binary = azurite_binary()
    if binary is None:
        missing_azurite()
    workspace = tmp_path_factory.mktemp("azurite")
    proc = subprocess.Popen(
        [str(binary), "--silent", "--location", str(workspace), "--blobHost", "127.0.0.1", "--blobPort", "0",
         "--skipApiVersionCheck", "--loose", "--disableTelemetry",
         # Azure's SDK pools connections process-wide; Azurite's 5 s keep-alive would close idle ones
         # between tests, and a request on a closed one stalls for seconds of retries.
         "--blobKeepAliveTimeout", "600"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    with serving(proc, wait_for_port, azurite_fs) as (port, fs):
        yield Azurite(port, fs)


@pytest.fixture
def container(azurite: Azurite) -> str:
    """A new, empty container for one test."""
    name = f"t{uuid.uuid4().hex[:16]}"
    azurite.fs.create_dir(name)
    return name


@pytest.fixture
def azure_env(azurite: Azurite, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Credentials for Azurite in this process's environment (for run_job) and as a dict (for the CLI)."""
    for name in STORAGE_VARS:
        monkeypatch.delenv(name, raising=False)
    env = azurite.env()
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


# --------------------------------------------------------------------------- S3 (moto's standalone server)

def wait_for_moto(proc: subprocess.Popen[str], timeout: float) -> int:
    port, output = port_from_output(proc, MOTO_LISTENING, timeout)
    if port is None:
        skip_or_fail(f"moto_server did not start: {output}")
    return port


S3_KEY_ID = "moto-test-key-id"
S3_SECRET = "moto-test-secret-key"  # moto accepts any key; registered with `redact` like a real one
AWS_VARS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_DEFAULT_PROFILE",
            "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_CONFIG_FILE",
            "AWS_SHARED_CREDENTIALS_FILE", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN")


@dataclass
class MotoS3:
    port: int
    fs: pafs.FileSystem

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        """The variables a run needs: keys and the endpoint (AWS_ENDPOINT_URL, as for MinIO or R2)."""
        return {"AWS_ACCESS_KEY_ID": S3_KEY_ID, "AWS_SECRET_ACCESS_KEY": S3_SECRET,
                "AWS_ENDPOINT_URL": self.endpoint, "AWS_REGION": "us-east-1"}

    def client(self) -> Any:
        """A boto3 client (moto[server] depends on boto3), for what pyarrow does not show."""
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1",
                            aws_access_key_id=S3_KEY_ID, aws_secret_access_key=S3_SECRET)

    def keys(self, bucket: str) -> list[tuple[str, int]]:
        """Every object in a bucket as S3 lists it (key, size): directory markers and leftovers included."""
        client = self.client()
        found: list[tuple[str, int]] = []
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            found += [(o["Key"], o["Size"]) for o in page.get("Contents", [])]
        client.close()
        return sorted(found)

    def multipart_uploads(self, bucket: str) -> list[str]:
        """Keys of multipart uploads started and neither completed nor aborted (invisible as objects)."""
        client = self.client()
        uploads = client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
        client.close()
        return [u["Key"] for u in uploads]


def s3_fs(port: int) -> pafs.FileSystem:
    return pafs.S3FileSystem(access_key=S3_KEY_ID, secret_key=S3_SECRET, endpoint_override=f"127.0.0.1:{port}",
                             scheme="http", region="us-east-1", allow_bucket_creation=True)


@pytest.fixture(scope="session")
def moto_s3() -> Iterator[MotoS3]:
    try:
        import flask  # noqa: F401  (moto's server needs the [server] extra)
        import moto.server  # noqa: F401
    except ImportError as exc:
        skip_or_fail(f"moto's S3 server is not installed ({exc}): run `make setup` or "
                     "`.venv/bin/pip install -e '.[dev]'`")
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={k: v for k, v in os.environ.items() if k not in AWS_VARS})
    with serving(proc, wait_for_moto, s3_fs) as (port, fs):
        yield MotoS3(port, fs)


@pytest.fixture
def bucket(moto_s3: MotoS3) -> str:
    """A new, empty bucket for one test."""
    name = f"t{uuid.uuid4().hex[:16]}"
    moto_s3.fs.create_dir(name)
    return name


@pytest.fixture
def s3_env(moto_s3: MotoS3, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Keys and endpoint for moto in this process's environment (for run_job) and as a dict (for the CLI);
    any AWS profile, role or endpoint of the workstation is hidden from the test."""
    for name in AWS_VARS:
        monkeypatch.delenv(name, raising=False)
    env = moto_s3.env()
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


@pytest.fixture
def emulator() -> Iterator[EmulatorThread]:
    with EmulatorThread(EmulatorConfig()) as server:
        yield server


def put(fs: pafs.FileSystem, path: str, data: bytes) -> None:
    with fs.open_output_stream(path, compression=None) as stream:
        stream.write(data)


def part_infos(fs: pafs.FileSystem, folder: str) -> list[pafs.FileInfo]:
    infos = fs.get_file_info(pafs.FileSelector(folder, allow_not_found=True))
    return sorted((i for i in infos if i.base_name.startswith("part-")), key=lambda i: i.base_name)


def committed_ids(fs: pafs.FileSystem, folder: str) -> list[str]:
    """Ids of every non-empty part, each read on its own: a partial part fails the test here."""
    ids: list[str] = []
    for info in part_infos(fs, folder):
        if info.size:
            ids += pq.read_table(info.path, columns=["id"], filesystem=fs).column("id").to_pylist()
    return ids


def rows(n: int) -> list[dict[str, Any]]:
    return [{"id": f"r{i:04d}", "text": f"passage number {i} about object storage"} for i in range(n)]


def assert_finished_output(fs: pafs.FileSystem, output: str, tmp_path: Path, scheme: str) -> None:
    """A run's cloud output once it ended with exit 0: vectors in its parts, the run in job.json, no lock
    left, and nothing written to a local look-alike of the URI."""
    table = pq.read_table(part_infos(fs, f"{output}/results")[0].path, filesystem=fs)
    assert len(table.column("embedding")[0].as_py()) > 0
    job = json.loads(fs.open_input_stream(f"{output}/job.json").read())
    assert job["runs"][-1]["exit_code"] == 0
    assert fs.get_file_info(f"{output}/lock").type.name == "NotFound"
    assert not (tmp_path / f"{scheme}:").exists()
