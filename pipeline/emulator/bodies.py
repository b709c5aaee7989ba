"""Error bodies, spelled as each service spells them.

Validation errors look the same on both services (OpenAI's
`{message, type, param, code}`; Azure passes them through). Auth, routing,
rate-limit and content-filter errors differ: Azure's have a string `code`
such as "429" or "DeploymentNotFound" and often no `type`.
"""

from __future__ import annotations

from typing import Any

from pipeline.emulator.filters import blocked_results, blocked_with_jailbreak

Body = dict[str, Any]

QUOTA_LINK = (
    "Please go here: https://aka.ms/oai/quotaincrease if you would like to further increase the default rate limit."
)


def openai_error(
    message: str, type_: str | None = "invalid_request_error", param: str | None = None, code: str | None = None
) -> Body:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def azure_error(code: str, message: str) -> Body:
    return {"error": {"code": code, "message": message}}


def resource_not_found(azure: bool, method: str, path: str) -> Body:
    if azure:
        return azure_error("404", "Resource not found")
    return openai_error(f"Invalid URL ({method} {path})")


def deployment_not_found(azure: bool, name: str) -> Body:
    if azure:
        return azure_error(
            "DeploymentNotFound",
            "The API deployment for this resource does not exist. If you created the deployment "
            "within the last 5 minutes, please wait a moment and try again.",
        )
    return openai_error(f"The model `{name}` does not exist or you do not have access to it.", code="model_not_found")


def unauthorized(azure: bool, reason: str) -> Body:
    """401 body; `reason` is "missing", "key" (bad api key) or "token" (bad bearer token)."""
    if not azure:
        if reason == "missing":
            return openai_error(
                "You didn't provide an API key. You need to provide your API key in an Authorization "
                "header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
            )
        return openai_error("Incorrect API key provided.", code="invalid_api_key")
    if reason == "missing":
        return azure_error(
            "401",
            "Access denied due to missing subscription key. Make sure to include subscription key "
            "when making requests to an API.",
        )
    if reason == "token":
        return azure_error(
            "401",
            "Unauthorized. Access token is missing, invalid, audience is incorrect "
            "(https://cognitiveservices.azure.com), or have expired.",
        )
    return azure_error(
        "401",
        "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a "
        "valid key for an active subscription and use a correct regional API endpoint for your resource.",
    )


def rate_limited(
    azure: bool, operation: str, api_version: str, seconds: int, reason: str, model: str, limit: int
) -> Body:
    """The 429 body; `reason` is "requests" (call rate) or "tokens" (token rate)."""
    if azure:
        kind = "token rate limit" if reason == "tokens" else "call rate limit"
        unit = "second" if seconds == 1 else "seconds"
        return azure_error(
            "429",
            f"Requests to the {operation} Operation under Azure OpenAI API version {api_version} "
            f"have exceeded {kind} of your current OpenAI S0 pricing tier. "
            f"Please retry after {seconds} {unit}. {QUOTA_LINK}",
        )
    what = "tokens per min (TPM)" if reason == "tokens" else "requests per min (RPM)"
    return openai_error(
        f"Rate limit reached for {model} in organization org-emulator on {what}: Limit {limit}. "
        f"Please try again in {seconds}s. Visit https://platform.openai.com/account/rate-limits "
        "to learn more.",
        type_=reason,
        code="rate_limit_exceeded",
    )


def prompt_filtered(azure: bool) -> Body:
    """400 for a chat/completions/embeddings prompt that trips the content filter."""
    body = openai_error(
        "The response was filtered due to the prompt triggering Azure OpenAI's content management "
        "policy. Please modify your prompt and retry. To learn more about our content filtering "
        "policies please read our documentation: https://go.microsoft.com/fwlink/?linkid=2198766",
        type_=None,
        param="prompt",
        code="content_filter",
    )
    if azure:
        body["error"]["status"] = 400
        body["error"]["innererror"] = {
            "code": "ResponsibleAIPolicyViolation",
            "content_filter_result": blocked_with_jailbreak(),
        }
    return body


def image_prompt_filtered(azure: bool) -> Body:
    """400 for an image prompt the safety system refuses (note `inner_error`, plural results)."""
    body: Body = {
        "error": {
            "code": "content_policy_violation",
            "message": "Your request was rejected as a result of our safety system. Your prompt may "
            "contain text that is not allowed by our safety system.",
            "param": None,
            "type": "invalid_request_error",
        }
    }
    if azure:
        body["error"]["inner_error"] = {
            "code": "ResponsibleAIPolicyViolation",
            "content_filter_results": blocked_results(),
        }
    return body


def operation_too_new(operation: str, since: str) -> Body:
    """400 for an operation asked of an Azure api-version older than its first (Responses_Create ->
    "Azure OpenAI Responses API is enabled only for api-version 2025-03-01-preview and later")."""
    name = operation.split("_")[0]
    return azure_error("BadRequest", f"Azure OpenAI {name} API is enabled only for api-version {since} and later")


def flex_unavailable() -> Body:
    """429 for a flex request the service has no capacity for now (the same on both services)."""
    return openai_error("Resource unavailable, please try again later.", code="resource_unavailable")


_FAULT_MESSAGES: dict[int, tuple[str, str, str | None]] = {
    # status: (Azure code, message, OpenAI type)
    400: ("BadRequest", "Injected fault: the request was rejected.", "invalid_request_error"),
    401: ("401", "Access denied due to invalid subscription key.", "invalid_request_error"),
    403: ("Forbidden", "Access forbidden: the resource is temporarily blocked.", "invalid_request_error"),
    404: ("404", "Resource not found", "invalid_request_error"),
    408: ("Timeout", "The operation was timeout.", "timeout"),
    409: ("Conflict", "The request conflicts with another one in progress.", "invalid_request_error"),
    413: ("RequestEntityTooLarge", "The request entity is too large.", "invalid_request_error"),
    422: ("UnprocessableEntity", "The request could not be processed.", "invalid_request_error"),
    500: ("InternalServerError", "The server had an error while processing your request.", "server_error"),
    502: ("BadGateway", "Bad gateway.", "server_error"),
    503: ("ServiceUnavailable", "The service is temporarily unable to process your request.", "server_error"),
    504: ("Timeout", "The operation was timeout.", "server_error"),
}


def fault_body(azure: bool, status: int) -> Body:
    """The body of an injected error status other than 429."""
    code, message, type_ = _FAULT_MESSAGES[status]
    return azure_error(code, message) if azure else openai_error(message, type_=type_)
