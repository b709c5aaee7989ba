"""Legacy completions: a prompt from a column or template; optional streaming.

Columns: text, finish_reason, prompt_tokens, completion_tokens, content_filtered, filter_categories;
plus `choices` (list<string>) when n > 1.
"""

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
    fold_stream,
    prompt_text,
)
from pipeline.endpoints.generation import TextGeneration
from pipeline.errors import InvalidResponseError
from pipeline.sources.base import Row
from pipeline.spec import JobSpec
from pipeline.tokens import estimate_text_tokens

# Azure charges max_tokens at arrival; the API's default is 16, and the emulator assumes the same.
DEFAULT_MAX_TOKENS = 16


class Completions(TextGeneration):
    kind = "completions"
    op = "completions"
    payload_key = "prompt"

    def __init__(self, spec: JobSpec) -> None:
        super().__init__(spec)
        # best_of completions are generated server-side too, and counted at arrival.
        generated = max(self.choices, int(self.params.get("best_of", 1)))
        self.completion_budget = int(self.params.get("max_tokens", DEFAULT_MAX_TOKENS)) * generated

    def prepare(self, row: Row) -> Item:
        prompt = prompt_text(row, self.spec)
        return Item(row, prompt, estimate_text_tokens(prompt) + self.completion_budget)

    def parse_answer(self, request: Request, response: HttpResponse) -> list[dict[str, Any]]:
        data, choices = self.answer_and_choices(request, response)
        if not all(isinstance(c.get("index", 0), int) for c in choices):  # sorted by it below
            raise InvalidResponseError("the answer has no choices")
        choices = sorted(choices, key=lambda c: c.get("index", 0))
        first = choices[0]
        result = {"text": content_text(first.get("text")), **answer_columns(first, data.get("usage"))}
        if self.choices > 1:
            result["choices"] = [content_text(c.get("text")) for c in choices]
        return [result]

    def whole_answer(self, events: list[dict[str, Any]]) -> dict[str, Any]:
        return assemble_stream(events)

    def result_fields(self) -> list[pa.Field]:
        return [pa.field("text", pa.string()), *ANSWER_FIELDS, *self.choices_fields()]


def assemble_stream(events: list[dict[str, Any]]) -> dict[str, Any]:
    """Server-sent `text_completion` chunks -> the shape of a non-streamed answer."""
    folded = fold_stream(events, lambda choice: choice.get("text"))
    choices = [{"index": i, "text": folded.texts[i], "finish_reason": folded.finish.get(i),
                "content_filter_results": folded.filters.get(i)} for i in sorted(folded.texts)]
    return {"choices": choices, "usage": folded.usage}
