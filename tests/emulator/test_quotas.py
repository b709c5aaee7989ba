"""Sliding-window quotas with an injected clock: no sleeping."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.emulator.quotas import UNLIMITED_REQUESTS, Limits, QuotaBook, SlidingWindowQuota


def test_one_request_per_second_at_60_rpm() -> None:
    quota = SlidingWindowQuota(Limits(rpm=60, tpm=None, window_s=1.0))
    assert quota.admit(0.0, 1).admitted
    refused = quota.admit(0.4, 1)
    assert not refused.admitted
    assert refused.reason == "requests"
    assert refused.retry_after_s == pytest.approx(0.6)
    assert quota.admit(1.0, 1).admitted  # the first arrival left the window exactly now


def test_refusals_are_not_charged() -> None:
    quota = SlidingWindowQuota(Limits(rpm=120, tpm=None, window_s=1.0))
    assert [quota.admit(t, 1).admitted for t in (0.0, 0.1, 0.2, 0.3)] == [True, True, False, False]
    assert quota.admit(1.05, 1).admitted  # refused arrivals did not extend the window


def test_headers_count_the_window() -> None:
    quota = SlidingWindowQuota(Limits(rpm=600, tpm=6000, window_s=10.0))
    decision = quota.admit(0.0, 100)
    assert (decision.limit_requests, decision.limit_tokens) == (100, 1000)
    assert (decision.remaining_requests, decision.remaining_tokens) == (99, 900)


def test_quota_below_one_per_window_stretches_the_window() -> None:
    quota = SlidingWindowQuota(Limits(rpm=6, tpm=None, window_s=1.0))  # one per 10 s
    assert quota.admit(0.0, 0).admitted
    assert not quota.admit(5.0, 0).admitted
    assert quota.admit(10.0, 0).admitted


def test_tokens_refuse_once_the_window_is_full() -> None:
    quota = SlidingWindowQuota(Limits(rpm=None, tpm=6000, window_s=1.0))  # 100 tokens per second
    assert quota.admit(0.0, 60).admitted
    assert quota.admit(0.1, 60).admitted  # 60 < 100 held: admitted, window now over quota
    refused = quota.admit(0.2, 10)
    assert (refused.admitted, refused.reason) == (False, "tokens")
    assert refused.retry_after_s == pytest.approx(0.8)  # when the first 60 leave
    assert quota.admit(1.0, 10).admitted


def test_an_oversized_charge_holds_the_window_longer() -> None:
    quota = SlidingWindowQuota(Limits(rpm=None, tpm=600, window_s=1.0))  # 10 tokens per second
    assert quota.admit(0.0, 25).admitted
    refused = quota.admit(1.5, 1)
    assert not refused.admitted
    assert refused.retry_after_s == pytest.approx(1.0)  # 25 tokens = 2.5 windows
    assert quota.admit(2.5, 1).admitted


def test_no_limits_admit_everything() -> None:
    quota = SlidingWindowQuota(Limits(rpm=None, tpm=None, window_s=1.0))
    decisions = [quota.admit(0.0, 10_000) for _ in range(100)]
    assert all(d.admitted for d in decisions)
    assert decisions[-1].limit_requests == UNLIMITED_REQUESTS


def test_book_keeps_deployments_apart_and_rebuilds_on_new_limits() -> None:
    book = QuotaBook()
    tight = Limits(rpm=60, tpm=None, window_s=1.0)
    assert book.admit("a", 0.0, 1, tight).admitted
    assert book.admit("b", 0.0, 1, tight).admitted
    assert not book.admit("a", 0.1, 1, tight).admitted
    assert book.admit("a", 0.2, 1, Limits(rpm=600, tpm=None, window_s=1.0)).admitted
    assert book.peek("a", 0.2, Limits(rpm=600, tpm=None, window_s=1.0)).remaining_requests == 9


arrivals = st.lists(st.floats(min_value=0.0, max_value=0.5, allow_nan=False), min_size=1, max_size=200)


@settings(max_examples=200, deadline=None)
@given(gaps=arrivals, rpm=st.integers(60, 3000), window=st.sampled_from([1.0, 10.0, 0.5]))
def test_admitted_requests_never_exceed_the_window_quota(gaps: list[float], rpm: int, window: float) -> None:
    quota = SlidingWindowQuota(Limits(rpm=rpm, tpm=None, window_s=window))
    now, admitted = 0.0, []
    for gap in gaps:
        now += gap
        if quota.admit(now, 1).admitted:
            admitted.append(now)
    per_window = rpm * window / 60
    limit = per_window if per_window >= 1 else 1
    span = window if per_window >= 1 else 60 / rpm
    for start in admitted:  # any window's count is largest when it starts at an admission
        inside = [t for t in admitted if start <= t < start + span]
        assert len(inside) <= limit


@settings(max_examples=100, deadline=None)
@given(
    charges=st.lists(st.tuples(st.floats(0.0, 0.3), st.integers(1, 50)), min_size=1, max_size=150),
    tpm=st.integers(600, 60_000),
)
def test_tokens_admitted_over_time_stay_near_the_quota(charges: list[tuple[float, int]], tpm: int) -> None:
    """Admission happens only below quota, so a window holds at most quota + one charge."""
    quota = SlidingWindowQuota(Limits(rpm=None, tpm=tpm, window_s=1.0))
    now, admitted = 0.0, []
    for gap, tokens in charges:
        now += gap
        if quota.admit(now, tokens).admitted:
            admitted.append((now, tokens))
    per_window = tpm / 60
    for start, _ in admitted:
        held = sum(tokens for t, tokens in admitted if start <= t < start + 1.0)
        assert held < per_window + 50 + math.ulp(per_window)
