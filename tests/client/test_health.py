"""The stop rules about the service as a whole, in virtual time."""

from __future__ import annotations

import pytest

from pipeline.client.deployment import DeploymentDropped
from pipeline.client.health import ServiceAsksToWait, ServiceHealth, ServiceUnavailable
from pipeline.errors import APITimeoutError, BadRequestError, InternalServerError, RateLimitError
from pipeline.jobwide import SameRefusal

URL = "http://127.0.0.1:9/v1/chat/completions?api-version=2024-10-21"


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_an_outage_stops_only_after_max_outage_s_and_three_attempts() -> None:
    clock = Clock()
    health = ServiceHealth(max_outage_s=30, max_wait_s=60, clock=clock)
    clock.now += 60  # one long hung request is not an outage, however long
    health.on_error(APITimeoutError("no answer"), URL)
    health.on_error(APITimeoutError("no answer"), URL)
    with pytest.raises(ServiceUnavailable, match=r"127\.0\.0\.1:9/v1/chat/completions gave no answer for 60 s"):
        health.on_error(APITimeoutError("no answer"), URL)


def test_any_answer_below_500_shows_the_service_alive() -> None:
    clock = Clock()
    health = ServiceHealth(max_outage_s=30, max_wait_s=60, clock=clock)
    for _ in range(10):
        clock.now += 5
        health.on_error(InternalServerError("busy", status=503), URL)
        health.on_error(RateLimitError("slow down", status=429, retry_after=1), URL)  # alive, just busy


def test_only_5xx_is_named_as_such_and_0_never_stops() -> None:
    clock = Clock()
    health = ServiceHealth(max_outage_s=30, max_wait_s=60, clock=clock)
    never = ServiceHealth(max_outage_s=0, max_wait_s=60, clock=clock)
    clock.now += 31
    for _ in range(2):
        health.on_error(InternalServerError("boom", status=500), URL)
    with pytest.raises(ServiceUnavailable, match="answered only 5xx errors"):
        health.on_error(InternalServerError("boom", status=500), URL)
    for _ in range(100):
        never.on_error(InternalServerError("boom", status=500), URL)


def test_a_dropped_deployment_is_an_answer() -> None:
    clock = Clock()
    health = ServiceHealth(max_outage_s=1, max_wait_s=60, clock=clock)
    clock.now += 5
    for _ in range(5):
        health.on_error(DeploymentDropped("deployment b dropped: 401"), URL)


def test_waits_beyond_the_cap_asked_three_times_in_a_row_stop() -> None:
    health = ServiceHealth(max_outage_s=30, max_wait_s=60, clock=Clock())
    day = RateLimitError("tomorrow", status=429, retry_after=86400)
    health.on_error(day, URL)
    health.on_error(RateLimitError("soon", status=429, retry_after=2), URL)  # within the cap: the count restarts
    health.on_error(day, URL)
    health.on_answer()
    health.on_error(day, URL)
    health.on_error(day, URL)
    with pytest.raises(ServiceAsksToWait, match=r"wait 24\.0 h .*max_retry_wait_s = 60 s"):
        health.on_error(day, URL)


def test_same_refusal_counts_disjoint_requests() -> None:
    rule = SameRefusal()
    refusal = BadRequestError("API version not supported", status=400, code="BadRequest")
    batch = [f"r{i}" for i in range(16)]
    assert not rule.note(refusal, batch)
    assert not rule.note(refusal, batch[:8])  # the first half stands in for the batch
    assert not rule.note(refusal, batch[:4])
    assert not rule.note(refusal, batch[4:8])  # two disjoint halves
    assert rule.note(refusal, batch[8:])


def test_same_refusal_ignores_a_chain_around_one_bad_row_and_other_messages() -> None:
    rule = SameRefusal()
    bad_row = BadRequestError("Invalid 'input[0]'", status=400, code="invalid_value")
    batch = [f"r{i}" for i in range(64)]
    for size in (64, 32, 16, 8, 4, 2, 1):
        assert not rule.note(bad_row, batch[:size])
    assert not rule.note(BadRequestError("another", status=400), batch[1:2])
    assert not rule.note(BadRequestError("third", status=400), batch[2:3])
