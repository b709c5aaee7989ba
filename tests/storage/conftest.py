"""Storage fixtures: Azurite (Azure Storage's emulator, from npm) on a free port, and a fresh container per test.

`make storage-emulator` installs Azurite into .cache/azurite; AZURITE_BIN points elsewhere. Without it the
tests skip on a workstation and fail in CI (CI=true), where a skipped storage suite would hide a regression.

Timing note: now and then Azurite cuts short its 404 to the lease release pyarrow sends after deleting a
blob; the Azure SDK then waits ~6 s and retries, so a test may take 7 s longer. Real Azure does not.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

from pipeline.emulator.config import EmulatorConfig
from pipeline.emulator.server import EmulatorThread
from pipeline.storage import AZURITE_ACCOUNT, AZURITE_KEY

ROOT = Path(__file__).resolve().parents[2]
LOCAL_AZURITE = ROOT / ".cache" / "azurite" / "node_modules" / ".bin" / "azurite-blob"
LISTENING = re.compile(r"listens on https?://[^:]+:(\d+)")
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


def missing_azurite() -> None:
    message = ("azurite-blob is not installed: run `make storage-emulator` (needs Node.js and npm) "
               "or set AZURITE_BIN")
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(message)
    pytest.skip(message)


def wait_for_port(proc: subprocess.Popen[str], timeout: float) -> int:
    """Azurite prints the port it bound (we ask for port 0: any free one); keep draining its output after."""
    found: dict[str, int] = {}
    ready = threading.Event()
    seen: list[str] = []

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            seen.append(line)
            match = LISTENING.search(line)
            if match and not ready.is_set():
                found["port"] = int(match.group(1))
                ready.set()
        ready.set()  # exited without listening

    threading.Thread(target=read, daemon=True).start()
    if not ready.wait(timeout) or "port" not in found:
        proc.kill()
        raise RuntimeError(f"Azurite did not start: {''.join(seen)[-2000:]}")
    return found["port"]


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
    try:
        port = wait_for_port(proc, timeout=30)
        fs = azurite_fs(port)
        fs.get_file_info(pafs.FileSelector("", allow_not_found=True))  # answers requests, not only listens
        yield Azurite(port, fs)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


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
