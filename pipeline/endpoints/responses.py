"""The Responses API: the row's conversation as `input`, the system message as `instructions`; optional
streaming (typed events); json_schema text formats as typed columns.

Columns: output_text, status, incomplete_reason, input_tokens, output_tokens, reasoning_tokens,
cached_tokens, response_id, ttft_ms; plus one per top-level property of a json_schema `text.format`.

An `incomplete` response (max_output_tokens reached, content filtered) is a result with its status and
reason, not a failure: what was generated is kept, and its typed columns are null (its JSON is cut).
A `failed` response or one carrying an error is an invalid answer (retried, then a failure row); a
refusal is a RefusalError.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pyarrow as pa

from pipeline.endpoints.base import Endpoint, HttpResponse, Item, Request, detail_count, usage_counts
from pipeline.endpoints.chat import DEFAULT_COMPLETION_TOKENS
from pipeline.endpoints.files import FileNeed, Usage
from pipeline.endpoints.messages import image_needs, user_messages
from pipeline.endpoints.structured import output_schema_of, typed_columns
from pipeline.errors import InvalidResponseError, RefusalError
from pipeline.sources.base import Row
from pipeline.spec import JobSpec
from pipeline.tokens import estimate_messages_tokens

ANSWERED = frozenset({"completed", "incomplete"})  # the statuses a row is written with
TERMINAL_EVENTS = frozenset({"response.completed", "response.incomplete", "response.failed"})
REFUSAL_KEPT = 500  # characters of a refusal in its failure message

RESULT_FIELDS = [
    pa.field("output_text", pa.string()),
    pa.field("status", pa.string()),
    pa.field("incomplete_reason", pa.string()),
    pa.field("input_tokens", pa.int64()),
    pa.field("output_tokens", pa.int64()),
    pa.field("reasoning_tokens", pa.int64()),
    pa.field("cached_tokens", pa.int64()),
    pa.field("response_id", pa.string()),
    pa.field("ttft_ms", pa.float64()),
]


class Responses(Endpoint):
    kind = "responses"
    op = "responses"

    def __init__(self, spec: JobSpec) -> None:
        super().__init__(spec)
        self.stream = bool(self.params.get("stream"))
        # Azure counts the output budget against TPM at arrival, as it does chat's max_tokens.
        self.output_budget = int(self.params.get("max_output_tokens") or DEFAULT_COMPLETION_TOKENS)
        self.output = output_schema_of(self.params, "responses", [f.name for f in RESULT_FIELDS],
                                       str(spec.source_file))

    def needs(self, row: Row) -> list[FileNeed]:
        return image_needs(row, self.spec)

    def prepare(self, row: Row) -> Item:
        messages = user_messages(row, self.spec)
        system = self.spec.input.system
        # Instructions are prompt tokens too: estimated as chat's system message is.
        counted = [{"role": "system", "content": system}, *messages] if system else messages
        return Item(row, self._input(messages), estimate_messages_tokens(counted) + self.output_budget)

    def _input(self, messages: list[dict[str, Any]]) -> str | list[dict[str, Any]]:
        """A prompt alone goes as the plain string `input`; a conversation (or an image) as input messages."""
        if self.spec.input.messages or self.spec.input.image:
            return [input_message(message) for message in messages]
        return str(messages[0]["content"])

    def build(self, batch: list[Item]) -> Request:
        (item,) = batch
        body = {**self.params, "input": item.payload}  # `model`: the client adds it, as for every v1 route
        if self.spec.input.system:
            body["instructions"] = self.spec.input.system
        return Request(self.op, batch, json=body, tokens=item.tokens, accept="sse" if self.stream else "json",
                       done_marker=False)  # a Responses stream ends with its terminal event, not [DONE]

    def parse_answer(self, request: Request, response: HttpResponse) -> list[dict[str, Any]]:
        data = assemble_stream(response.events) if request.accept == "sse" else response.json()
        if not isinstance(data, dict):
            raise InvalidResponseError("the answer is not a response object")
        status = answered_status(data)
        text, refusal = output_texts(data.get("output"))
        if refusal is not None:
            raise RefusalError(f"the model refused: {refusal[:REFUSAL_KEPT]}", code="refusal")
        usage = data.get("usage")
        counts = usage_counts(usage, ("input_tokens", "output_tokens", "total_tokens"))
        result = {
            "output_text": text,
            "status": status,
            "incomplete_reason": incomplete_reason(data.get("incomplete_details")),
            "input_tokens": counts.get("input_tokens"),
            "output_tokens": counts.get("output_tokens"),
            "reasoning_tokens": detail_count(usage, "output_tokens_details", "reasoning_tokens"),
            "cached_tokens": detail_count(usage, "input_tokens_details", "cached_tokens"),
            "response_id": data.get("id"),
            "ttft_ms": None if response.ttft_s is None else round(response.ttft_s * 1000, 2),
        }
        if self.output is not None:
            # Only a whole answer is JSON that can match the schema; an incomplete one keeps its text alone.
            typed = typed_columns(self.output, text) if status == "completed" else {}
            result.update({f.name: typed.get(f.name) for f in self.output.fields})
        return [result]

    def result_fields(self) -> list[pa.Field]:
        return [*RESULT_FIELDS, *(self.output.fields if self.output else ())]

    def usage(self, results: list[dict[str, Any]]) -> Usage:
        return Usage(tokens_in=sum(r.get("input_tokens") or 0 for r in results),
                     tokens_out=sum(r.get("output_tokens") or 0 for r in results),
                     tokens_cached=sum(r.get("cached_tokens") or 0 for r in results),
                     tokens_reasoning=sum(r.get("reasoning_tokens") or 0 for r in results))


# ---- request input


def input_message(message: dict[str, Any]) -> dict[str, Any]:
    """A chat-shaped message as a Responses input message: its content parts renamed (`text` is
    `input_text`, or `output_text` in an assistant's turn; `image_url` is `input_image`); parts already
    in the Responses shape, and string content, pass as they are."""
    content = message.get("content")
    if not isinstance(content, list):
        return message
    text_type = "output_text" if message.get("role") == "assistant" else "input_text"
    return {**message, "content": [_input_part(part, text_type) for part in content]}


def _input_part(part: Any, text_type: str) -> Any:
    kind = part.get("type") if isinstance(part, dict) else None
    if kind == "text":
        return {**part, "type": text_type}
    if kind == "image_url":
        image = part.get("image_url")
        url = image.get("url") if isinstance(image, dict) else image
        detail = image.get("detail") if isinstance(image, dict) else None
        return {"type": "input_image", "image_url": url, "detail": detail or "auto"}  # detail is required there
    return part


# ---- reading answers


def answered_status(data: dict[str, Any]) -> str:
    """The response's status when it is one a row is written with; a failed response, an error object or
    another status (queued, cancelled...) is an invalid answer naming it."""
    error = data.get("error")
    status = data.get("status")
    if error is not None or status == "failed":
        code = error.get("code") if isinstance(error, dict) else None
        message = error.get("message") if isinstance(error, dict) else error
        raise InvalidResponseError(f"the response failed: {message or 'no reason given'}",
                                   code=code if isinstance(code, str) else None)
    if not isinstance(status, str) or status not in ANSWERED:
        shown = repr(status) if isinstance(status, str) else "missing"
        raise InvalidResponseError(f"the response's status is {shown}, not completed or incomplete")
    return status


def incomplete_reason(details: Any) -> Any:
    """incomplete_details.reason (max_output_tokens, content_filter); its column checks the type."""
    if details is None:
        return None
    if not isinstance(details, dict):
        raise InvalidResponseError(f"the response's incomplete_details is a {type(details).__name__}, not an object")
    return details.get("reason")


def output_texts(output: Any) -> tuple[str | None, str | None]:
    """(the output_text parts of every message item joined, the refusal if any); None without any.
    Items other than messages (reasoning, tool calls) carry no text for the row."""
    texts: list[str] = []
    refusals: list[str] = []
    for part in _message_parts(output):
        kind = part.get("type")
        if kind == "output_text" and isinstance(part.get("text"), str):
            texts.append(part["text"])
        elif kind == "refusal" and isinstance(part.get("refusal"), str):
            refusals.append(part["refusal"])
        else:
            shown = kind if isinstance(kind, str) else "untyped"
            raise InvalidResponseError(f"the response's message holds a part that is not text ({shown})")
    return ("".join(texts) if texts else None), ("".join(refusals) if refusals else None)


def _message_parts(output: Any) -> Iterator[dict[str, Any]]:
    if output is None:
        return
    if not isinstance(output, list) or not all(isinstance(item, dict) for item in output):
        raise InvalidResponseError("the response's output is not a list of items")
    for item in output:
        if item.get("type") != "message":
            continue
        content = item.get("content")
        if not isinstance(content, list) or not all(isinstance(part, dict) for part in content):
            raise InvalidResponseError("a message item's content is not a list of parts")
        yield from content


def assemble_stream(events: list[dict[str, Any]]) -> dict[str, Any]:
    """Typed server-sent events -> the shape of a non-streamed response: the terminal event's response,
    with the text and refusal the deltas carried as its message (when the stream sent deltas). A stream
    without a terminal event was cut short: an invalid answer, not a success."""
    texts: list[str] = []
    refusals: list[str] = []
    for event in events:
        kind = event.get("type") if isinstance(event, dict) else None
        if not isinstance(kind, str):
            raise InvalidResponseError("a streamed event has no type")
        if kind in ("response.output_text.delta", "response.refusal.delta"):
            (texts if kind == "response.output_text.delta" else refusals).append(_delta(event))
        elif kind == "error":
            raise InvalidResponseError(f"the stream sent an error: {event.get('message') or 'no reason given'}",
                                       code=event["code"] if isinstance(event.get("code"), str) else None)
        elif kind in TERMINAL_EVENTS:
            return _whole(event, texts, refusals)
    raise InvalidResponseError("the stream ended without a terminal event (response.completed, "
                               "response.incomplete or response.failed)")


def _delta(event: dict[str, Any]) -> str:
    delta = event.get("delta")
    if not isinstance(delta, str):
        raise InvalidResponseError(f"a streamed {event['type']} event's delta is not text")
    return delta


def _whole(event: dict[str, Any], texts: list[str], refusals: list[str]) -> dict[str, Any]:
    response = event.get("response")
    if not isinstance(response, dict):
        raise InvalidResponseError(f"the stream's {event['type']} event holds no response object")
    if not texts and not refusals:  # a server that sends the whole response at the end, and no deltas
        return response
    parts = [{"type": "output_text", "text": "".join(texts)}] if texts else []
    parts += [{"type": "refusal", "refusal": "".join(refusals)}] if refusals else []
    return {**response, "output": [{"type": "message", "role": "assistant", "content": parts}]}
