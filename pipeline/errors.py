"""The tool's exceptions.

    PipelineError                 anything the tool reports to the user itself
    ├── SpecError                 bad job spec (exit 2)
    ├── InputError                bad input file, column or row set (exit 2)
    ├── JobAborted                the service refuses the job as a whole (exit 3)
    └── APIError                  one request's outcome, as the openai SDK names it
        ├── APIConnectionError    transport failed (reset, refused, truncated body)
        │   └── APITimeoutError
        ├── InvalidResponseError  2xx with a body we cannot parse, or a value its column cannot hold
        │   ├── AnswerCountError  not one result per input (several inputs: split the batch, don't retry)
        │   ├── SchemaMismatchError  a structured answer off its JSON schema ([limits] schema_attempts)
        │   └── RefusalError      the model declined (message.refusal): not retried
        └── APIStatusError        an HTTP error status
            ├── BadRequestError            400
            │   └── ContentFilterError     400 content_filter / content_policy_violation
            ├── AuthenticationError        401
            ├── PermissionDeniedError      403
            ├── NotFoundError              404
            ├── ConflictError              409
            ├── UnprocessableEntityError   422
            ├── RateLimitError             429
            │   ├── InsufficientQuotaError 429 insufficient_quota: billing, not pacing (exit 3)
            │   ├── RequestTooLargeError   429 for a request larger than the per-minute limit itself
            │   └── ResourceUnavailableError 429 resource_unavailable: flex capacity, not pacing
            └── InternalServerError        >= 500
"""

from __future__ import annotations

from dataclasses import dataclass, field


class PipelineError(Exception):
    """An error the tool explains to the user in one or two lines."""


class SpecError(PipelineError):
    """The job spec is invalid. The message names the file and key."""


class InputError(PipelineError):
    """The input cannot be read as the spec says. The message names file and line/column."""


class JobAborted(PipelineError):
    """The service refuses every request (auth, endpoint, deployment): stop the job."""


@dataclass
class APIError(PipelineError):
    """One request failed. Fields are what a failures row records."""

    message: str
    status: int | None = None
    code: str | None = None
    request_id: str | None = None
    retry_after: float | None = None
    detail: str | None = None  # e.g. content-filter categories, JSON text
    # Attempts made before the request was given up (set where retries end: ServiceClient.call); 0 when
    # the error never went through the retry loop. Not compared: the same refusal after 1 or 3 tries.
    attempts: int = field(default=0, compare=False)

    def __post_init__(self) -> None:
        super().__init__(self.message)

    def __str__(self) -> str:
        parts = [type(self).__name__]
        if self.status is not None:
            parts.append(str(self.status))
        if self.code:
            parts.append(self.code)
        return f"{' '.join(parts)}: {self.message}"


class APIConnectionError(APIError):
    pass


class APITimeoutError(APIConnectionError):
    pass


class InvalidResponseError(APIError):
    pass


class SchemaMismatchError(InvalidResponseError):
    """A structured answer that is not JSON, or does not match the job's JSON schema (a missing required
    property, a wrong type, a value outside an enum). Retried up to [limits] schema_attempts, then a failure
    row (code "schema_mismatch") whose detail keeps the raw content."""


class RefusalError(InvalidResponseError):
    """The model declined (chat `message.refusal`, a Responses `refusal` part): a failure row with its
    reason (code "refusal"), never a success with empty columns. Not retried: asked again it declines again."""


@dataclass
class AnswerCountError(InvalidResponseError):
    """An answer with more or fewer results than the request had inputs (a gateway that answers 16
    inputs with 1 vector). The same request would get the same answer: with several inputs the online
    engine halves the batch instead of retrying it; a single input is retried like any invalid answer."""

    expected: int = 0
    got: int = 0


class APIStatusError(APIError):
    pass


class BadRequestError(APIStatusError):
    pass


class ContentFilterError(BadRequestError):
    pass


class AuthenticationError(APIStatusError):
    pass


class PermissionDeniedError(APIStatusError):
    pass


class NotFoundError(APIStatusError):
    pass


class ConflictError(APIStatusError):
    pass


class UnprocessableEntityError(APIStatusError):
    pass


class RateLimitError(APIStatusError):
    pass


class InsufficientQuotaError(RateLimitError):
    """429 `insufficient_quota`: the subscription's billing or a spent monthly quota, not the pacing
    window. Waiting does not help (50 rows took 300 attempts and 77 s when it was retried): the job stops."""


class RequestTooLargeError(RateLimitError):
    """429 for one request larger than the per-minute limit itself ("Request too large ... Limit 30000,
    Requested 50000"): it can never be admitted, so it fails its row (a batch is split) and holds no one."""


class ResourceUnavailableError(RateLimitError):
    """429 `resource_unavailable`: flex processing (`service_tier = "flex"`) has no capacity right now. It says
    nothing about the job's quota, so it neither holds the other workers nor cuts the pacing rate: the
    request alone waits and tries again."""


class InternalServerError(APIStatusError):
    pass


STATUS_ERRORS: dict[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    422: UnprocessableEntityError,
    429: RateLimitError,
}


def error_class_for_status(status: int) -> type[APIStatusError]:
    """The SDK's mapping from HTTP status to exception class."""
    if status >= 500:
        return InternalServerError
    return STATUS_ERRORS.get(status, APIStatusError)


RETRYABLE_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504})


def is_retryable(error: BaseException) -> bool:
    """Transient failures worth another attempt (the openai SDK's rule, minus x-should-retry)."""
    if isinstance(error, RefusalError):
        return False
    if isinstance(error, APIConnectionError | InvalidResponseError):
        return True
    if isinstance(error, InsufficientQuotaError | RequestTooLargeError):
        return False
    if isinstance(error, APIStatusError):
        return error.status in RETRYABLE_STATUSES or (error.status or 0) >= 500
    return False


# A failure row whose every attempt ended like this says nothing about the row: the service was
# unreachable, slow or out of quota at the time. A plain rerun sends it again (preflight), unlike a
# refusal of the row itself (400, content filter, a bad answer), which only --retry-failed sends again.
TRANSIENT_ERROR_CLASSES = frozenset({"APIConnectionError", "APITimeoutError", "RateLimitError",
                                     "ResourceUnavailableError", "InternalServerError"})


def is_transient_failure(stage: str | None, error_class: str | None, status: int | None) -> bool:
    """Whether a failure row (its stage, error class and status) was the service's moment, not the row's."""
    if stage != "request":
        return False
    return error_class in TRANSIENT_ERROR_CLASSES or (error_class == "APIStatusError" and status in (408, 409))

