"""The service's token count from its headers: the log of our sends and the ratio (pure, no clock)."""

from __future__ import annotations

import pytest

from pipeline.client.accounting import MIN_SAMPLES, PRUNE_AT, SentLog, ServiceTokenCount, Slot


def test_the_log_sums_a_window_of_sends_less_the_refused_ones() -> None:
    log = SentLog()
    slots = [Slot(1, t / 10, 100) for t in range(20)]  # 100 tokens every 0.1 s
    for slot in slots:
        log.add(slot)
    assert log.between(0.45, 1.45) == 1000  # sends at 0.5 .. 1.4
    log.refuse(slots[7])
    log.refuse(slots[7])  # counted once
    assert log.between(0.45, 1.45) == 900
    assert log.between(1.45, 5.0) == 500


def test_pruning_keeps_the_sums_of_what_is_left() -> None:
    log = SentLog()
    for i in range(PRUNE_AT + 100):
        log.add(Slot(1, i * 0.001, 1))
    log.prune(before=PRUNE_AT * 0.001)
    end = (PRUNE_AT + 99) * 0.001
    assert log.between(end - 0.0495, end) == 50


def test_the_ratio_is_the_service_use_over_ours_across_its_window() -> None:
    count = ServiceTokenCount()
    ratios = []
    for i in range(40):  # 100 of our tokens every 0.1 s; the service charges 125 and counts over ~1 s
        slot = Slot(1, i / 10, 100)
        count.sent.add(slot)
        in_window = min(i + 1, 10)
        if count.observe(slot.sent_at + 0.05, slot, 10_000 - 125 * in_window, 10_000, 0.95):
            ratios.append(count.ratio)
    assert len(ratios) == 1 and ratios[0] == pytest.approx(1.25)  # learned at MIN_SAMPLES, steady after
    assert MIN_SAMPLES <= 5


def test_nothing_is_learned_over_a_window_the_model_does_not_hold_for() -> None:
    count = ServiceTokenCount()
    for i in range(20):
        slot = Slot(1, i / 10, 100)
        count.sent.add(slot)
        assert not count.observe(slot.sent_at, slot, 10, 10_000, 60.0)  # OpenAI's minute
        assert not count.observe(slot.sent_at, slot, 20_000, 10_000, 1.0)  # remaining above the limit
    assert count.ratio == 1.0
