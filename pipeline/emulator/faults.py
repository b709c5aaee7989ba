"""Fault injection: deterministic per-row markers and seeded random faults.

A request whose text holds `[[fault:KIND:N]]` gets fault KIND on the first N
requests that carry that exact marker string; later ones succeed. N may be
`always`. Each distinct marker in a request counts that request once; the
fault applied is that of the first marker (in text order) still within its N.
So retry tests can say "this row fails twice with a 503, then succeeds"
however the requests interleave.

Status and behaviour kinds decide how the exchange answers (flow.py, before the
operation runs). Answer kinds spoil what a 200 answer holds, the ways real
servers and gateways have got it wrong; the operation applies them (see
`fault_answers.answer_fault`) and they count only requests that reach an answer:
    badindex      embeddings: an index given twice (one input left without a vector)
    nanusage      usage.prompt_tokens is NaN (Python's json writes and reads it)
    contentparts  chat: message.content as a list of text parts (valid, as some servers send it)
    wrongdim      embeddings: `dimensions` ignored (native length; half of it when none is asked)
    nanvector     embeddings: the first vector holds NaN and Infinity
    fewervectors  embeddings: only the first vector, or none for a single input
    nofinish      streams: [DONE] arrives but no chunk carries a finish_reason (Responses: the stream
                  ends cleanly with no response.completed)
    badjson       JSON answers (json_object, json_schema): the content is not JSON (cut in half), finish "stop"
    schema        JSON answers: valid JSON the schema refuses (a required property missing, a wrong type or
                  an enum value not in its list, picked by the input; json_object: an array)
    refusal       chat and responses: the model refuses (message.refusal / a refusal content part)

`flexbusy` is neither: a flex request (service_tier "flex") carrying it gets flex's 429 "resource
unavailable" before any quota is charged, as `flex_unavailable_rate` draws it (flow.py).

Random faults (`error_rate`, `drop_rate`, ...) draw from one RNG seeded by
`seed`: the same arrival order gives the same faults.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

STATUS_KINDS = frozenset(
    {"500", "502", "503", "504", "408", "409", "429", "429bare", "400", "404", "413", "422", "401", "403"}
)
BEHAVIOUR_KINDS = frozenset({"drop", "hang", "truncate", "invalidjson"})
EXCHANGE_KINDS = STATUS_KINDS | BEHAVIOUR_KINDS
ANSWER_KINDS = frozenset({"badindex", "nanusage", "contentparts", "wrongdim", "nanvector", "fewervectors", "nofinish",
                          "badjson", "schema", "refusal"})
FLEX_KINDS = frozenset({"flexbusy"})
FAULT_KINDS = EXCHANGE_KINDS | ANSWER_KINDS | FLEX_KINDS

MARKER = re.compile(r"\[\[fault:([a-z0-9]+):(\d+|always)\]\]")


@dataclass(frozen=True)
class Marker:
    text: str  # the exact marker string, the key its count is kept under
    kind: str
    times: int | None  # None: always


@dataclass(frozen=True)
class Fault:
    kind: str
    marker: str | None = None  # None for a random fault

    @property
    def status(self) -> int | None:
        """The HTTP status this fault answers with, if it answers at all."""
        return int(self.kind[:3]) if self.kind in STATUS_KINDS else None


def parse_markers(texts: Iterable[str], kinds: frozenset[str] = FAULT_KINDS) -> list[Marker]:
    """Every distinct, well-formed marker of one of `kinds` in `texts`, in order of first appearance."""
    found: dict[str, Marker] = {}
    for text in texts:
        for match in MARKER.finditer(text):
            kind, times = match.group(1), match.group(2)
            if kind in kinds and match.group(0) not in found:
                count = None if times == "always" else int(times)
                found[match.group(0)] = Marker(match.group(0), kind, count)
    return list(found.values())


def _flex_rng(seed: int) -> random.Random:
    return random.Random(f"flex:{seed}")


@dataclass(frozen=True)
class RandomRates:
    error: float = 0.0
    drop: float = 0.0
    hang: float = 0.0
    truncate: float = 0.0
    burst429: float = 0.0


class FaultInjector:
    """Counts marker sightings and draws random faults."""

    def __init__(self, seed: int = 0) -> None:
        self.seen: Counter[str] = Counter()
        self._rng = random.Random(seed)
        self._flex_rng = _flex_rng(seed)

    def reset(self, seed: int) -> None:
        self.seen.clear()
        self._rng = random.Random(seed)
        self._flex_rng = _flex_rng(seed)

    def flex_unavailable(self, texts: Iterable[str], rate: float) -> bool:
        """Whether a flex request finds no capacity: a `flexbusy` marker still due, or a draw under `rate`
        (from its own RNG, so flex requests leave the random faults' sequence as it was)."""
        if self.from_markers(texts, FLEX_KINDS) is not None:
            return True
        return rate > 0 and self._flex_rng.random() < rate

    def from_markers(self, texts: Iterable[str], kinds: frozenset[str] = EXCHANGE_KINDS) -> Fault | None:
        """Count this request against its markers of `kinds`; the first one still due fires."""
        chosen: Fault | None = None
        for marker in parse_markers(texts, kinds):
            earlier = self.seen[marker.text]
            self.seen[marker.text] += 1
            due = marker.times is None or earlier < marker.times
            if due and chosen is None:
                chosen = Fault(marker.kind, marker.text)
        return chosen

    def at_random(self, rates: RandomRates) -> Fault | None:
        """One draw decides; errors split 500/503, spurious 429s split with/without retry-after."""
        if not any((rates.error, rates.drop, rates.hang, rates.truncate, rates.burst429)):
            return None  # keep the RNG sequence untouched while no random fault is asked for
        draw = self._rng.random()
        for rate, kinds in (
            (rates.error, ("500", "503")),
            (rates.drop, ("drop",)),
            (rates.hang, ("hang",)),
            (rates.truncate, ("truncate",)),
            (rates.burst429, ("429", "429bare")),
        ):
            if draw < rate:
                return Fault(self._rng.choice(kinds))
            draw -= rate
        return None
