"""Chat completions: messages from a column, or built from prompt/template + system; optional streaming."""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from pipeline.endpoints.base import (
    ANSWER_FIELDS,
    HttpResponse,
    Item,
    Request,
    answer_columns,
    content_text,
    detail_count,
    fold_stream,
)
from pipeline.endpoints.files import FileNeed, Usage
from pipeline.endpoints.generation import TextGeneration
from pipeline.endpoints.messages import image_needs, user_messages
from pipeline.endpoints.structured import output_schema_of, typed_columns
from pipeline.errors import InvalidResponseError, RefusalError
from pipeline.sources.base import Row
from pipeline.tokens import estimate_messages_tokens

# Azure counts max_tokens against TPM at arrival; with none given we assume this many.
DEFAULT_COMPLETION_TOKENS = 1024


class Chat(TextGeneration):
    kind = "chat"
    op = "chat/completions"
    payload_key = "messages"

    def __init__(self, spec: Any) -> None:
        super().__init__(spec)
        self.completion_budget = int(self.params.get("max_completion_tokens") or self.params.get("max_tokens")
                                     or DEFAULT_COMPLETION_TOKENS) * self.choices
        # A json_schema answer: its properties become typed columns, and every answer is checked against it.
        self.output = output_schema_of(self.params, "chat", [f.name for f in self._own_fields()],
                                       str(spec.source_file))

    def needs(self, row: Row) -> list[FileNeed]:
        return image_needs(row, self.spec)

    def prepare(self, row: Row) -> Item:
        messages = self._messages(row)
        return Item(row, messages, estimate_messages_tokens(messages) + self.completion_budget)

    def _messages(self, row: Row) -> list[dict[str, Any]]:
        messages = user_messages(row, self.spec)
        if self.spec.input.system:
            messages = [{"role": "system", "content": self.spec.input.system}, *messages]
        return messages

    def parse_answer(self, request: Request, response: HttpResponse) -> list[dict[str, Any]]:
        data, choices = self.answer_and_choices(request, response)
        first = choices[0]
        refusal = message_refusal(first)
        if refusal:
            raise RefusalError(f"the model refused: {refusal[:500]}", code="refusal")
        usage = data.get("usage")
        result = {
            "content": message_content(first),
            **answer_columns(first, usage),
            "reasoning_tokens": detail_count(usage, "completion_tokens_details", "reasoning_tokens"),
            "cached_tokens": detail_count(usage, "prompt_tokens_details", "cached_tokens"),
            "ttft_ms": None if response.ttft_s is None else round(response.ttft_s * 1000, 2),
        }
        if len(choices) > 1:
            result["choices"] = [message_content(c) for c in choices]
        if self.output is not None:
            result.update(typed_columns(self.output, result["content"]))
        return [result]

    def usage(self, results: list[dict[str, Any]]) -> Usage:
        return Usage(tokens_in=sum(r.get("prompt_tokens") or 0 for r in results),
                     tokens_out=sum(r.get("completion_tokens") or 0 for r in results),
                     tokens_cached=sum(r.get("cached_tokens") or 0 for r in results),
                     tokens_reasoning=sum(r.get("reasoning_tokens") or 0 for r in results))

    def whole_answer(self, events: list[dict[str, Any]]) -> dict[str, Any]:
        return assemble_stream(events)

    def _own_fields(self) -> list[pa.Field]:
        return [pa.field("content", pa.string()), *ANSWER_FIELDS, *USAGE_DETAIL_FIELDS,
                pa.field("ttft_ms", pa.float64()), *self.choices_fields()]

    def result_fields(self) -> list[pa.Field]:
        return [*self._own_fields(), *(self.output.fields if self.output else ())]


USAGE_DETAIL_FIELDS = [pa.field("reasoning_tokens", pa.int64()), pa.field("cached_tokens", pa.int64())]


def message_refusal(choice: dict[str, Any]) -> str | None:
    """The model's refusal text (structured outputs put it in `message.refusal`, content null)."""
    message = choice.get("message")
    refusal = message.get("refusal") if isinstance(message, dict) else None
    return refusal if isinstance(refusal, str) and refusal.strip() else None


def message_content(choice: dict[str, Any]) -> str | None:
    """A choice's message text (None for a tool call or a refusal: no column holds the refusal)."""
    message = choice.get("message")
    if message is None:
        return None
    if not isinstance(message, dict):
        raise InvalidResponseError(f"a choice's message is a {type(message).__name__}, not an object")
    return content_text(message.get("content"))


def assemble_stream(events: list[dict[str, Any]]) -> dict[str, Any]:
    """Server-sent chunks -> the shape of a non-streamed chat completion."""
    folded = fold_stream(events, lambda choice: (choice.get("delta") or {}).get("content"))
    choices = [{"index": i, "message": {"role": "assistant", "content": folded.texts.get(i, "")},
                "finish_reason": folded.finish.get(i), "content_filter_results": folded.filters.get(i)}
               for i in sorted(folded.texts) or [0]]
    return {"choices": choices, "usage": folded.usage}
