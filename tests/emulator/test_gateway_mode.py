"""Quotas as gateways and other services count them: clock-aligned windows, LiteLLM's own 429 and its
holding of over-limit requests, a token count that differs from the shared estimate."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.request

import pytest

from pipeline.client.transport import status_error
from pipeline.emulator.charges import chat_charge
from pipeline.emulator.config import EmulatorConfig, apply_updates
from pipeline.emulator.quotas import FixedWindowQuota, Limits, QuotaBook
from pipeline.emulator.testing import AZURE_KEY_HEADERS, azure_url
from pipeline.errors import RateLimitError

CHAT = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}


def test_a_fixed_window_counts_from_zero_at_each_window_start() -> None:
    quota = FixedWindowQuota(Limits(rpm=120, tpm=None, window_s=2.0, kind="fixed"))  # 4 per clock-aligned 2 s
    assert [quota.admit(1.9, 1).admitted for _ in range(4)] == [True] * 4  # the window [0, 2) takes them at once
    assert quota.admit(2.0, 1).admitted  # a new window, whatever came just before
    assert [quota.admit(2.1, 1).admitted for _ in range(3)] == [True] * 3
    refused = quota.admit(2.5, 1)
    assert (refused.admitted, refused.reason, refused.remaining_requests) == (False, "requests", 0)
    assert refused.retry_after_s == pytest.approx(1.5)  # until the window's end, not a sliding refill


def test_the_quota_book_keeps_a_fixed_window_per_deployment() -> None:
    book = QuotaBook()
    limits = Limits(rpm=60, tpm=None, window_s=1.0, kind="fixed")
    assert book.admit("a", 0.5, 1, limits).admitted and book.admit("b", 0.5, 1, limits).admitted
    assert not book.admit("a", 0.6, 1, limits).admitted


def test_an_unknown_mode_is_refused_when_set() -> None:
    config = EmulatorConfig()
    for name, value in (("window_kind", "tumbling"), ("gateway", "nginx"), ("over_limit", "drop")):
        with pytest.raises(ValueError, match=name):
            apply_updates(config, {name: value})
    apply_updates(config, {"window_kind": "fixed", "gateway": "litellm", "over_limit": "hold"})
    assert (config.window_kind, config.gateway, config.over_limit) == ("fixed", "litellm", "hold")
    apply_updates(config, {"gateway": None})
    assert config.gateway is None


async def test_litellm_refuses_with_its_own_retry_after_and_call_id(emulator, session) -> None:
    server = await emulator(rpm=60, window_s=3.0, window_kind="fixed", gateway="litellm")  # 3 per 3 s window
    url = azure_url(server.url, "gpt-4o-mini", "chat/completions")
    for _ in range(3):
        async with session.post(url, json=CHAT, headers=AZURE_KEY_HEADERS) as answer:
            assert answer.status == 200
            assert answer.headers["x-litellm-call-id"] and "x-request-id" not in answer.headers
    async with session.post(url, json=CHAT, headers=AZURE_KEY_HEADERS) as refused:
        headers = {k.lower(): v for k, v in refused.headers.items()}
        body = await refused.read()
    assert refused.status == 429
    assert "retry-after" not in headers and "retry-after-ms" not in headers and "x-request-id" not in headers
    seconds = int(headers["llm_provider-retry-after"])
    assert 1 <= seconds <= 3 and headers["x-ratelimit-remaining-requests"] == "0"
    error = status_error(429, headers, body)
    assert isinstance(error, RateLimitError) and error.retry_after == seconds
    assert error.request_id == headers["x-litellm-call-id"]
    assert "rpm limit: 3" in error.message


async def test_holding_over_the_limit_answers_late_instead_of_429(emulator, session) -> None:
    server = await emulator(rpm=60, window_s=2.0, window_kind="fixed", gateway="litellm", over_limit="hold")
    url = azure_url(server.url, "gpt-4o-mini", "chat/completions")
    for _ in range(2):
        async with session.post(url, json=CHAT, headers=AZURE_KEY_HEADERS) as answer:
            assert answer.status == 200
    window_end = (time.monotonic() // 2.0 + 1) * 2.0  # the emulator's clock is time.monotonic
    async with session.post(url, json=CHAT, headers=AZURE_KEY_HEADERS) as held:
        assert held.status == 200
        assert held.headers["x-ratelimit-remaining-requests"] == "1"  # the first of the next window
    assert time.monotonic() >= window_end
    assert server.stats()["by_status"] == {"200": 3}


async def test_token_count_factor_scales_what_a_request_is_charged(emulator, session) -> None:
    server = await emulator(tpm=60_000, token_count_factor=1.25)  # 1,000 tokens a 1 s window
    url = azure_url(server.url, "gpt-4o-mini", "chat/completions")
    async with session.post(url, json=CHAT, headers=AZURE_KEY_HEADERS) as answer:
        remaining = int(answer.headers["x-ratelimit-remaining-tokens"])
    assert remaining == 1000 - round(1.25 * chat_charge(CHAT))
    assert server.stats()["tokens_charged"] == round(1.25 * chat_charge(CHAT))


def test_the_command_takes_the_modes() -> None:
    command = [sys.executable, "-m", "pipeline", "emulator", "--port", "0", "--rpm", "60", "--window-s", "60",
               "--window-kind", "fixed", "--gateway", "litellm", "--over-limit", "hold", "--token-count-factor", "0.8"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        with urllib.request.urlopen(f"{url}/_emulator/config", timeout=5) as answer:
            config = json.loads(answer.read())
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    assert (config["window_kind"], config["gateway"], config["over_limit"]) == ("fixed", "litellm", "hold")
    assert config["token_count_factor"] == 0.8
