"""A Ray cluster of this machine for the whole session (`ray start --head`, 4 logical CPUs on 127.0.0.1),
this test process connected to it as a driver, and the emulator the workers send to.

Without Ray the tests skip on a workstation and fail under CI=true (make setup installs the [ray] extra)."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.emulator.config import EmulatorConfig
from pipeline.emulator.server import EmulatorThread

from ..storage.conftest import skip_or_fail

CPUS = 4  # logical: the shards wait on the service, not on these 2 cores


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def ray_cli() -> str:
    return str(Path(sys.executable).with_name("ray"))


@pytest.fixture(scope="session")
def ray_address(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The address of a head node started for the session, stopped at its end."""
    try:
        import ray  # noqa: F401
    except ImportError:
        skip_or_fail("Ray is not installed: `make setup` installs the [ray] extra")
    port = _free_port()
    temp = Path(f"/tmp/rt{os.getpid()}")  # short: Ray's socket paths must fit in 107 bytes
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    command = [ray_cli(), "start", "--head", f"--port={port}", f"--num-cpus={CPUS}", "--node-ip-address=127.0.0.1",
               "--include-dashboard=false", "--disable-usage-stats", f"--temp-dir={temp}"]
    started = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
    if started.returncode:
        pytest.fail(f"ray start failed: {started.stderr[-2000:]}")
    address = f"127.0.0.1:{port}"
    try:
        yield address
    finally:
        # Not waited for (it takes seconds): the head's processes are SIGKILLed on their way out of the session.
        subprocess.Popen([ray_cli(), "stop", "--force"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
                         start_new_session=True)
        shutil.rmtree(temp, ignore_errors=True)


@pytest.fixture(scope="session")
def ray_driver(ray_address: str) -> Iterator[str]:
    """This process connected to the cluster (run_job with executor = "ray" then uses the connection)."""
    import ray

    ray.init(address=ray_address, log_to_driver=False)
    try:
        yield ray_address
    finally:
        with contextlib.suppress(Exception):
            ray.shutdown()


@pytest.fixture
def emulator() -> Iterator[EmulatorThread]:
    with EmulatorThread(EmulatorConfig()) as server:
        yield server
