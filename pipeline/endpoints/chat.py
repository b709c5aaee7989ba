"""Chat completions: messages from a column, or built from prompt/template + system; optional streaming."""

from __future__ import annotations

import base64
import mimetypes
from pathlib import Path
from typing import Any

import pyarrow as pa

from pipeline.endpoints.base import (
    ANSWER_FIELDS,
    HttpResponse,
    Item,
    Request,
    RowError,
    answer_columns,
    content_text,
    fold_stream,
    prompt_text,
)
from pipeline.endpoints.files import FileNeed
from pipeline.endpoints.generation import TextGeneration
from pipeline.errors import InvalidResponseError
from pipeline.sources.base import Row
from pipeline.tokens import estimate_messages_tokens

# Azure counts max_tokens against TPM at arrival; with none given we assume this many.
DEFAULT_COMPLETION_TOKENS = 1024
ROLES = frozenset({"system", "user", "assistant", "developer", "tool"})
REMOTE_IMAGES = ("http://", "https://", "data:")  # passed on as they are, never read


class Chat(TextGeneration):
    kind = "chat"
    op = "chat/completions"
    payload_key = "messages"

    def __init__(self, spec: Any) -> None:
        super().__init__(spec)
        self.completion_budget = int(self.params.get("max_completion_tokens") or self.params.get("max_tokens")
                                     or DEFAULT_COMPLETION_TOKENS) * self.choices

    def needs(self, row: Row) -> list[FileNeed]:
        spec = self.spec.input
        need = image_need(row, spec.image, self.spec) if spec.image and not spec.messages else None
        return [need] if need is not None else []

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

    def parse_answer(self, request: Request, response: HttpResponse) -> list[dict[str, Any]]:
        data, choices = self.answer_and_choices(request, response)
        first = choices[0]
        result = {
            "content": message_content(first),
            **answer_columns(first, data.get("usage")),
            "ttft_ms": None if response.ttft_s is None else round(response.ttft_s * 1000, 2),
        }
        if len(choices) > 1:
            result["choices"] = [message_content(c) for c in choices]
        return [result]

    def whole_answer(self, events: list[dict[str, Any]]) -> dict[str, Any]:
        return assemble_stream(events)

    def result_fields(self) -> list[pa.Field]:
        return [pa.field("content", pa.string()), *ANSWER_FIELDS, pa.field("ttft_ms", pa.float64()),
                *self.choices_fields()]


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


def image_need(row: Row, column: str, spec: Any) -> FileNeed | None:
    """The image file a vision row names, to be read whole; None for a URL (or a value image_part refuses)."""
    value = row.fields.get(column)
    if not isinstance(value, str) or not value or value.startswith(REMOTE_IMAGES):
        return None
    path = Path(value) if Path(value).is_absolute() else Path(spec.input.path).parent / value
    return FileNeed(column, str(path), whole=True)


def image_part(row: Row, column: str, spec: Any) -> dict[str, Any]:
    """A vision `image_url` part: URLs pass through, files (read by the source side) become data URLs."""
    value = row.fields.get(column)
    if not isinstance(value, str) or not value:
        raise RowError(f"row {row.id!r} (line {row.line}): '{column}' must be an image file path or URL")
    if value.startswith(REMOTE_IMAGES):
        return {"type": "image_url", "image_url": {"url": value}}
    facts = row.files.get(column)
    if facts is None or facts.data is None:
        reason = "not read" if facts is None else facts.error if facts.regular else "not a regular file"
        raise RowError(f"row {row.id!r}: cannot read image {value!r}: {reason}")
    mime = mimetypes.guess_type(facts.name)[0] or "image/png"
    return {"type": "image_url", "image_url": {"url": f"data:{mime};base64,{base64.b64encode(facts.data).decode()}"}}


def assemble_stream(events: list[dict[str, Any]]) -> dict[str, Any]:
    """Server-sent chunks -> the shape of a non-streamed chat completion."""
    folded = fold_stream(events, lambda choice: (choice.get("delta") or {}).get("content"))
    choices = [{"index": i, "message": {"role": "assistant", "content": folded.texts.get(i, "")},
                "finish_reason": folded.finish.get(i), "content_filter_results": folded.filters.get(i)}
               for i in sorted(folded.texts) or [0]]
    return {"choices": choices, "usage": folded.usage}
