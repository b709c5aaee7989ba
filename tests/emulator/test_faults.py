"""Fault markers and random faults, without a server."""

from __future__ import annotations

import pytest

from pipeline.emulator.faults import ANSWER_KINDS, FAULT_KINDS, Fault, FaultInjector, RandomRates, parse_markers


def test_parse_markers_reads_kind_and_count() -> None:
    markers = parse_markers(["row [[fault:503:2]] and [[fault:hang:always]]", "[[fault:503:2]] again"])
    assert [(m.kind, m.times) for m in markers] == [("503", 2), ("hang", None)]
    assert markers[0].text == "[[fault:503:2]]"


@pytest.mark.parametrize("text", ["[[fault:999:1]]", "[[fault:500]]", "[fault:500:1]", "[[fault:500:x]]"])
def test_malformed_or_unknown_markers_are_ignored(text: str) -> None:
    assert parse_markers([text]) == []


def test_every_documented_kind_is_known() -> None:
    documented = ("500 502 503 504 408 409 429 429bare drop hang truncate invalidjson 400 404 413 422 401 403 "
                  "badindex nanusage contentparts wrongdim nanvector fewervectors nofinish badjson schema refusal "
                  "flexbusy")
    assert set(documented.split()) == FAULT_KINDS


def test_answer_kinds_are_counted_only_where_answers_are_made() -> None:
    """flow.py picks exchange faults without looking at answer kinds; the operation picks those."""
    injector = FaultInjector()
    texts = ["row [[fault:nanusage:1]] and [[fault:503:1]]"]
    assert injector.from_markers(texts) == Fault("503", "[[fault:503:1]]")
    assert injector.from_markers(texts) is None
    assert injector.seen == {"[[fault:503:1]]": 2}
    assert injector.from_markers(texts, ANSWER_KINDS) == Fault("nanusage", "[[fault:nanusage:1]]")
    assert injector.from_markers(texts, ANSWER_KINDS) is None


def test_first_n_requests_with_a_marker_fail_then_succeed() -> None:
    injector = FaultInjector()
    texts = ["embed me [[fault:503:2]]"]
    assert [injector.from_markers(texts) for _ in range(3)] == [
        Fault("503", "[[fault:503:2]]"),
        Fault("503", "[[fault:503:2]]"),
        None,
    ]


def test_always_never_runs_out() -> None:
    injector = FaultInjector()
    assert all(injector.from_markers(["[[fault:400:always]]"]) for _ in range(20))


def test_markers_count_independently() -> None:
    injector = FaultInjector()
    both = ["[[fault:500:1]]", "[[fault:429:2]]"]
    assert injector.from_markers(both) == Fault("500", "[[fault:500:1]]")
    assert injector.from_markers(both) == Fault("429", "[[fault:429:2]]")
    assert injector.from_markers(both) is None
    assert injector.seen == {"[[fault:500:1]]": 3, "[[fault:429:2]]": 3}


def test_status_of_a_fault() -> None:
    assert Fault("429bare").status == 429
    assert Fault("hang").status is None


def test_random_faults_follow_the_seed() -> None:
    rates = RandomRates(error=0.2, drop=0.1, burst429=0.2)
    runs = []
    for _ in range(2):
        injector = FaultInjector(seed=3)
        runs.append([injector.at_random(rates) for _ in range(200)])
    assert runs[0] == runs[1]
    kinds = {f.kind for f in runs[0] if f}
    assert kinds == {"500", "503", "drop", "429", "429bare"}
    assert 60 < sum(f is not None for f in runs[0]) < 140


def test_zero_rates_inject_nothing() -> None:
    assert FaultInjector().at_random(RandomRates()) is None
