"""Auth modes against an emulator that checks them; no secret ever reaches a file, log or message."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path

from pipeline.runner import RunOptions, run_job
from pipeline.spec import load_spec

from .conftest import corpus, read_dataset, run_cli, write_job, write_rows


@dataclass
class AccessToken:
    token: str
    expires_on: int | float


class CountingCredential:
    """Same get_token interface as azure-identity's async credentials; short-lived tokens."""

    def __init__(self, lifetime_s: float) -> None:
        self.lifetime_s = lifetime_s
        self.calls = 0
        self.issued: dict[str, float] = {}

    async def get_token(self, *scopes: str, **kwargs: object) -> AccessToken:
        assert scopes == ("https://cognitiveservices.azure.com/.default",)
        await asyncio.sleep(0.01)
        self.calls += 1
        token = f"entra-token-{self.calls}-x9"
        self.issued[token] = time.time() + self.lifetime_s
        return AccessToken(token, self.issued[token])

    def valid(self, token: str) -> bool:
        return token in self.issued and time.time() < self.issued[token]


def test_entra_tokens_shared_and_refreshed_mid_run(tmp_path: Path, emulator) -> None:
    credential = CountingCredential(lifetime_s=1.0)  # 600 rows, 16 at a time, 30 ms each: 1.1 s at least
    emulator.configure(token_verifier=credential.valid, latency_ms=30)
    spec = write_job(tmp_path, emulator.url, input_path=write_rows(tmp_path / "in.jsonl", corpus(600)),
                     limits={"batch_size": 1, "concurrency": 16}, service={"auth": "entra"})
    started = time.monotonic()
    result = run_job(load_spec(spec), RunOptions(credential=credential))
    elapsed = time.monotonic() - started
    assert result.exit_code == 0, result.message
    assert result.summary["requests"] == 600
    assert emulator.stats()["by_status"].get("401", 0) == 0
    assert elapsed > 1.0, "the run must outlive one token"
    assert 2 <= credential.calls <= elapsed / (1.0 * 0.75) + 2


def test_failing_credential_is_one_message_and_exit_3(tmp_path: Path, emulator) -> None:
    spec = write_job(tmp_path, emulator.url, input_path=write_rows(tmp_path / "in.jsonl", corpus(5)),
                     service={"auth": "entra"})

    class Broken:
        async def get_token(self, *scopes: str, **kwargs: object) -> AccessToken:
            raise RuntimeError("DefaultAzureCredential failed to retrieve a token")

    result = run_job(load_spec(spec), RunOptions(credential=Broken()))
    assert result.exit_code == 3
    assert "Entra ID" in (result.message or "")
    assert emulator.stats()["requests"] == 0


def test_api_key_header_checked(tmp_path: Path, emulator) -> None:
    emulator.configure(api_key="good-key-1234")
    spec = write_job(tmp_path, emulator.url, input_path=write_rows(tmp_path / "in.jsonl", corpus(3)),
                     service={"auth": "api-key"})
    assert run_cli("run", str(spec), "-q", env={"AZURE_OPENAI_API_KEY": "good-key-1234"}).returncode == 0


def test_missing_key_is_one_line_before_any_request(tmp_path: Path, emulator) -> None:
    spec = write_job(tmp_path, emulator.url, input_path=write_rows(tmp_path / "in.jsonl", corpus(3)),
                     service={"auth": "api-key", "api_key_env": "NO_SUCH_KEY_VAR"})
    proc = run_cli("run", str(spec), "-q")
    assert proc.returncode == 2
    assert "NO_SUCH_KEY_VAR is not set" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert emulator.stats()["requests"] == 0


def test_no_secret_in_outputs_logs_or_errors(tmp_path: Path, emulator) -> None:
    secret = "sk-LEAKCHECK-93f1c2d4e5"
    emulator.configure(api_key=secret)
    rows = [*corpus(20), {"id": "f1", "text": "[[fault:500:2]]"}, {"id": "f2", "text": "[[fault:400:always]]"},
            {"id": "f3", "text": "BLOCKME"}, {"id": "f4", "text": "[[fault:drop:1]]"}]
    spec = write_job(tmp_path, emulator.url, input_path=write_rows(tmp_path / "in.jsonl", rows),
                     limits={"batch_size": 2}, service={"auth": "api-key", "api_key_env": "LEAK_KEY"})
    proc = run_cli("--log-level", "debug", "--log-bodies", "run", str(spec), "--summary-json",
                   str(tmp_path / "out" / "summary.json"), env={"LEAK_KEY": secret})
    assert proc.returncode == 1, proc.stderr
    assert "POST http://127.0.0.1" in proc.stderr and "x-request-id" in proc.stderr
    assert secret not in proc.stdout + proc.stderr
    for path in (tmp_path / "out").rglob("*"):
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path
    failures = read_dataset(tmp_path / "out" / "failures")
    assert failures and all(f["request_id"] for f in failures)
    wrong = run_cli("--log-level", "debug", "run", str(spec), "-q", "--retry-failed", env={"LEAK_KEY": secret + "x"})
    assert wrong.returncode == 3 and secret not in wrong.stderr
