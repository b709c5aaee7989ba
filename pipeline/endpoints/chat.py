"""Chat completions: messages from a column, or built from prompt/template + system; optional streaming."""

from __future__ import annotations

import base64
import mimetypes
from pathlib import Path
from typing import Any

import pyarrow as pa

from pipeline.endpoints.base import (
    ANSWER_FIELDS,
    Endpoint,
    HttpResponse,
    Item,
    Request,
    RowError,
    answer_columns,
    content_text,
    fold_stream,
    prompt_text,
)
from pipeline.errors import InvalidResponseError
from pipeline.sources.base import Row
from pipeline.tokens import estimate_messages_tokens

# Azure counts max_tokens against TPM at arrival; with none given we assume this many.
DEFAULT_COMPLETION_TOKENS = 1024
ROLES = frozenset({"system", "user", "assistant", "developer", "tool"})


class Chat(Endpoint):
    kind = "chat"
    op = "chat/completions"

    def __init__(self, spec: Any) -> None:
        super().__init__(spec)
        self.stream = bool(self.params.get("stream"))
        if self.stream:
            self.params["stream_options"] = {**self.params.get("stream_options", {}), "include_usage": True}
        self.completion_budget = int(self.params.get("max_completion_tokens") or self.params.get("max_tokens")
                                     or DEFAULT_COMPLETION_TOKENS) * int(self.params.get("n", 1))

    def prepare(self, row: Row) -> Item:
        messages = self._messages(row)
        return Item(row, messages, estimate_messages_tokens(messages) + self.completion_budget)

    def _messages(self, row: Row) -> list[dict[str, Any]]:
        spec = self.spec.input
        if spec.messages:
            messages = _checked_messages(row, spec.messages)
        else:
            content: Any = prompt_text(row, self.spec)
            if spec.image:
                content = [{"type": "text", "text": content}, image_part(row, spec.image, self.spec)]
            messages = [{"role": "user", "content": content}]
        if spec.system:
            messages = [{"role": "system", "content": spec.system}, *messages]
        return messages

    def build(self, batch: list[Item]) -> Request:
        (item,) = batch
        body = {**self.params, "messages": item.payload}
        return Request(self.op, batch, json=body, tokens=item.tokens, accept="sse" if self.stream else "json")

    def parse_answer(self, request: Request, response: HttpResponse) -> list[dict[str, Any]]:
        data = assemble_stream(response.events) if request.accept == "sse" else response.json()
        choices = data.get("choices") if isinstance(data, dict) else None
        if not isinstance(choices, list) or not choices or not all(isinstance(c, dict) for c in choices):
            raise InvalidResponseError("the answer has no choices")
        first = choices[0]
        result = {
            "content": message_content(first),
            **answer_columns(first, data.get("usage")),
            "ttft_ms": None if response.ttft_s is None else round(response.ttft_s * 1000, 2),
        }
        if len(choices) > 1:
            result["choices"] = [message_content(c) for c in choices]
        return [result]

    def result_fields(self) -> list[pa.Field]:
        fields = [pa.field("content", pa.string()), *ANSWER_FIELDS, pa.field("ttft_ms", pa.float64())]
        if int(self.params.get("n", 1)) > 1:
            fields.append(pa.field("choices", pa.list_(pa.string())))
        return fields


def message_content(choice: dict[str, Any]) -> str | None:
    """A choice's message text (None for a tool call or a refusal: no column holds the refusal)."""
    message = choice.get("message")
    if message is None:
        return None
    if not isinstance(message, dict):
        raise InvalidResponseError(f"a choice's message is a {type(message).__name__}, not an object")
    return content_text(message.get("content"))


def _checked_messages(row: Row, column: str) -> list[dict[str, Any]]:
    value = row.fields.get(column)
    where = f"row {row.id!r} (line {row.line})"
    if not isinstance(value, list) or not value:
        raise RowError(f"{where}: '{column}' must be a non-empty list of {{role, content}} objects")
    for position, message in enumerate(value):
        if not isinstance(message, dict) or message.get("role") not in ROLES or "content" not in message:
            raise RowError(f"{where}: '{column}'[{position}] needs a role ({', '.join(sorted(ROLES))}) and content")
    return value


def image_part(row: Row, column: str, spec: Any) -> dict[str, Any]:
    """A vision `image_url` part: URLs pass through, files become data URLs."""
    value = row.fields.get(column)
    if not isinstance(value, str) or not value:
        raise RowError(f"row {row.id!r} (line {row.line}): '{column}' must be an image file path or URL")
    if value.startswith(("http://", "https://", "data:")):
        return {"type": "image_url", "image_url": {"url": value}}
    path = Path(value) if Path(value).is_absolute() else Path(spec.input.path).parent / value
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise RowError(f"row {row.id!r}: cannot read image {value!r}: {exc.strerror or exc}") from None
    mime = mimetypes.guess_type(path.name)[0] or "image/png"
    return {"type": "image_url", "image_url": {"url": f"data:{mime};base64,{base64.b64encode(data).decode()}"}}


def assemble_stream(events: list[dict[str, Any]]) -> dict[str, Any]:
    """Server-sent chunks -> the shape of a non-streamed chat completion."""
    folded = fold_stream(events, lambda choice: (choice.get("delta") or {}).get("content"))
    choices = [{"index": i, "message": {"role": "assistant", "content": folded.texts.get(i, "")},
                "finish_reason": folded.finish.get(i), "content_filter_results": folded.filters.get(i)}
               for i in sorted(folded.texts) or [0]]
    return {"choices": choices, "usage": folded.usage}
