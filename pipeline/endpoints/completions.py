"""Legacy completions: a prompt from a column or template; optional streaming.

Columns: text, finish_reason, prompt_tokens, completion_tokens, content_filtered, filter_categories;
plus `choices` (list<string>) when n > 1.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from pipeline.endpoints.base import (
    ANSWER_FIELDS,
    Endpoint,
    HttpResponse,
    Item,
    Request,
    answer_columns,
    content_text,
    fold_stream,
    prompt_text,
)
from pipeline.errors import InvalidResponseError
from pipeline.sources.base import Row
from pipeline.spec import JobSpec
from pipeline.tokens import estimate_text_tokens

# Azure charges max_tokens at arrival; the API's default is 16, and the emulator assumes the same.
DEFAULT_MAX_TOKENS = 16


class Completions(Endpoint):
    kind = "completions"
    op = "completions"

    def __init__(self, spec: JobSpec) -> None:
        super().__init__(spec)
        self.stream = bool(self.params.get("stream"))
        if self.stream:
            self.params["stream_options"] = {**self.params.get("stream_options", {}), "include_usage": True}
        self.choices = int(self.params.get("n", 1))
        # best_of completions are generated server-side too, and counted at arrival.
        generated = max(self.choices, int(self.params.get("best_of", 1)))
        self.completion_budget = int(self.params.get("max_tokens", DEFAULT_MAX_TOKENS)) * generated

    def prepare(self, row: Row) -> Item:
        prompt = prompt_text(row, self.spec)
        return Item(row, prompt, estimate_text_tokens(prompt) + self.completion_budget)

    def build(self, batch: list[Item]) -> Request:
        (item,) = batch
        body = {**self.params, "prompt": item.payload}
        return Request(self.op, batch, json=body, tokens=item.tokens, accept="sse" if self.stream else "json")

    def parse_answer(self, request: Request, response: HttpResponse) -> list[dict[str, Any]]:
        data = assemble_stream(response.events) if request.accept == "sse" else response.json()
        choices = data.get("choices") if isinstance(data, dict) else None
        if not isinstance(choices, list) or not choices or not all(
                isinstance(c, dict) and isinstance(c.get("index", 0), int) for c in choices):
            raise InvalidResponseError("the answer has no choices")
        choices = sorted(choices, key=lambda c: c.get("index", 0))
        first = choices[0]
        result = {"text": content_text(first.get("text")), **answer_columns(first, data.get("usage"))}
        if self.choices > 1:
            result["choices"] = [content_text(c.get("text")) for c in choices]
        return [result]

    def result_fields(self) -> list[pa.Field]:
        fields = [pa.field("text", pa.string()), *ANSWER_FIELDS]
        if self.choices > 1:
            fields.append(pa.field("choices", pa.list_(pa.string())))
        return fields


def assemble_stream(events: list[dict[str, Any]]) -> dict[str, Any]:
    """Server-sent `text_completion` chunks -> the shape of a non-streamed answer."""
    folded = fold_stream(events, lambda choice: choice.get("text"))
    choices = [{"index": i, "text": folded.texts[i], "finish_reason": folded.finish.get(i),
                "content_filter_results": folded.filters.get(i)} for i in sorted(folded.texts)]
    return {"choices": choices, "usage": folded.usage}
