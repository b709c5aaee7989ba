"""`pipeline emulator` as a subprocess: prints its URL, serves, stops on SIGTERM."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import urllib.error
import urllib.request

import pytest


def test_command_serves_until_sigterm() -> None:
    command = [
        sys.executable,
        "-m",
        "pipeline",
        "emulator",
        "--port",
        "0",
        "--rpm",
        "600",
        "--deployment",
        "gpt",
        "--api-key",
        "sekret",
    ]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert "sekret" not in line
        url = line.strip()
        assert url.startswith("http://127.0.0.1:")
        request = urllib.request.Request(
            f"{url}/openai/deployments/gpt/embeddings?api-version=2024-10-21",
            data=json.dumps({"input": "hi"}).encode(),
            headers={"api-key": "sekret", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=5) as answer:
            assert answer.status == 200 and answer.headers["x-ratelimit-limit-requests"] == "10"
        request.headers["Api-key"] = "wrong"
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=5)
        assert refused.value.code == 401
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
