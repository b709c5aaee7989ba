"""Whether the service as a whole can take the job now: when it cannot, stop the run rather than fail rows.

Two stop rules, both about the service, never about one row:

- An outage (a circuit breaker): for `max_outage_s`, every attempt ended without an answer (timeouts,
  refused or dropped connections) or with a 5xx, and nothing succeeded. Against a server that accepts
  connections and never answers, rows used to become failures one by one while the run went on.
- Waits beyond the cap: the service asked, on WAITS_IN_A_ROW answers in a row, to wait longer than
  `max_retry_wait_s` (a `retry-after: 86400`). Waiting that long is not what a batch run is for, and
  failing the rows would make a rerun skip them.

Either stop is JobAborted (exit 3): the rows in flight are not counted, so running the job again later
sends them. Any answer below 500 (a success, a 400, a 429) proves the service alive and resets the
outage rule; any answer without an over-cap wait resets the other.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from pipeline.client.deployment import DeploymentDropped
from pipeline.errors import APIConnectionError, APIError, InternalServerError, JobAborted
from pipeline.redact import redact

MIN_DEAD_ATTEMPTS = 3  # a lone hung request, however long, is not an outage
WAITS_IN_A_ROW = 3


class ServiceUnavailable(JobAborted):
    """The service gave no answer (or only 5xx) for max_outage_s: stopped, resumable."""


class ServiceAsksToWait(JobAborted):
    """The service keeps asking for waits longer than max_retry_wait_s: stopped, resumable."""


class ServiceHealth:
    """Shared by every request of a run (all deployments: one of them alive keeps the run going)."""

    def __init__(self, max_outage_s: float, max_wait_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_outage_s = max_outage_s  # 0: never stop for an outage
        self.max_wait_s = max_wait_s
        self._clock = clock
        self._alive_at = clock()  # the run's start counts as alive: an outage is measured from there
        self._dead_attempts = 0
        self._long_waits = 0

    def on_answer(self) -> None:
        """An answer the service meant (any status below 500, a 2xx whose body we refused included)."""
        self._alive_at = self._clock()
        self._dead_attempts = 0
        self._long_waits = 0

    def on_error(self, error: APIError, where: str) -> None:
        """Count an attempt's error; raise JobAborted when one of the stop rules is met."""
        self._check_wait(error, where)
        if _no_answer(error):
            self._dead_attempts += 1
            self._check_outage(error, where)
        else:
            self._alive_at = self._clock()
            self._dead_attempts = 0

    def _check_wait(self, error: APIError, where: str) -> None:
        if error.retry_after is None or error.retry_after <= self.max_wait_s:
            self._long_waits = 0
            return
        self._long_waits += 1
        if self._long_waits >= WAITS_IN_A_ROW:
            raise ServiceAsksToWait(
                f"{_endpoint(where)} keeps asking to wait {_duration(error.retry_after)} before the next request "
                f"(HTTP {error.status}), more than [limits] max_retry_wait_s = {self.max_wait_s:g} s; "
                "stopped without failing any row: run the job again later, or raise max_retry_wait_s")

    def _check_outage(self, error: APIError, where: str) -> None:
        silent = self._clock() - self._alive_at
        if not self.max_outage_s or silent < self.max_outage_s or self._dead_attempts < MIN_DEAD_ATTEMPTS:
            return
        what = "answered only 5xx errors" if isinstance(error, InternalServerError) else "gave no answer"
        raise ServiceUnavailable(
            f"{_endpoint(where)} {what} for {silent:.0f} s ({self._dead_attempts} attempts in a row, the last: "
            f"{error}); stopped after [limits] max_outage_s = {self.max_outage_s:g} without failing the rows "
            "in flight: check the service, then run the job again to continue")


def _no_answer(error: APIError) -> bool:
    """The attempt ended without the service saying anything about the request: a timeout, a refused
    or dropped connection, or a server error. (A deployment dropped for its auth is an answer.)"""
    if isinstance(error, DeploymentDropped):
        return False
    return isinstance(error, APIConnectionError | InternalServerError)


def _duration(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 60:.0f} min" if seconds >= 120 else f"{seconds:.0f} s"


def _endpoint(url: str) -> str:
    """The URL the attempts went to, without its query (api-version): what the operator checks."""
    return redact(url.split("?")[0])
