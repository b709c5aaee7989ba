"""What a run reports while it goes: one frozen dataclass per kind of event.

    Done       a request answered: its rows are buffered for results/
    Failed     rows that go to failures/ (refused, given up, unreadable input)
    Skipped    rows already done by earlier runs, reported together
    Retried    an attempt that failed and will be made again
    Throttled  a 429 that paces everyone

The engines and the client hand events to one typed callback (`EventSink`); RunStats applies them and
`RunOptions.on_event` sees them too. Each kind has its name in `kind`, for logs and for callers that
group events by name. A leaf module like errors.py: the client, both engines and the stats share it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar


@dataclass(frozen=True)
class Done:
    """One request answered: `rows` results buffered, with what they cost."""

    kind: ClassVar[str] = "done"
    rows: int
    latency_s: float
    tokens_in: int = 0
    tokens_out: int = 0
    images: int = 0
    audio_seconds: float = 0.0
    tokens_cached: int = 0  # of tokens_in
    tokens_reasoning: int = 0  # of tokens_out
    requests: int = 1  # a long recording's row is answered by several requests (its chunks)


@dataclass(frozen=True)
class Failed:
    """Rows buffered as failure rows. `requested`: a request was sent for them (not an input error);
    `transient`: the service's moment, not the row's (errors.is_transient_failure)."""

    kind: ClassVar[str] = "failed"
    rows: int
    code: str
    requested: bool = True
    transient: bool = False


@dataclass(frozen=True)
class Skipped:
    """Rows earlier runs finished; `failed_earlier`: their failure stands (not sent again)."""

    kind: ClassVar[str] = "skipped"
    rows: int
    failed_earlier: bool = False


@dataclass(frozen=True)
class Retried:
    """Attempt `attempt` failed with a transient error of `cause` (429, 5xx, timeout...): it goes again."""

    kind: ClassVar[str] = "retry"
    cause: str
    attempt: int


@dataclass(frozen=True)
class Throttled:
    """A 429 that holds the deployment's workers (retry_after seconds when the service said)."""

    kind: ClassVar[str] = "throttled"
    retry_after: float | None


Event = Done | Failed | Skipped | Retried | Throttled
EventSink = Callable[[Event], None]


def ignore(event: Event) -> None:
    """The sink of a client nobody listens to."""
