"""What chat and legacy completions share: one row a request, an optional event stream, n choices.

The two differ in what a row becomes (messages or a prompt), where a choice keeps its text
(message.content or text), how much an answer may generate, and how streamed chunks fold into a
whole answer; the rest is here. The column helpers they share (ANSWER_FIELDS, answer_columns,
fold_stream) are in base.py.
"""

from __future__ import annotations

from typing import Any, ClassVar

import pyarrow as pa

from pipeline.endpoints.base import Endpoint, HttpResponse, Item, Request
from pipeline.errors import InvalidResponseError
from pipeline.spec import JobSpec


class TextGeneration(Endpoint):
    """Base of chat and completions. Subclasses set `payload_key` and implement `whole_answer`."""

    payload_key: ClassVar[str]  # where a row's payload goes in the body: "messages" or "prompt"

    def __init__(self, spec: JobSpec) -> None:
        super().__init__(spec)
        self.stream = bool(self.params.get("stream"))
        if self.stream:
            # A stream carries usage (the row's token counts) only in a last chunk asked for with include_usage.
            self.params["stream_options"] = {**self.params.get("stream_options", {}), "include_usage": True}
        self.choices = int(self.params.get("n", 1))

    def build(self, batch: list[Item]) -> Request:
        (item,) = batch
        body = {**self.params, self.payload_key: item.payload}
        return Request(self.op, batch, json=body, tokens=item.tokens, accept="sse" if self.stream else "json")

    def answer_and_choices(self, request: Request, response: HttpResponse) -> tuple[dict[str, Any],
                                                                                    list[dict[str, Any]]]:
        """The answer (a stream folded into the shape of a whole one) and its choices, a non-empty list of
        objects; else InvalidResponseError."""
        data = self.whole_answer(response.events) if request.accept == "sse" else response.json()
        choices = data.get("choices") if isinstance(data, dict) else None
        if not isinstance(choices, list) or not choices or not all(isinstance(c, dict) for c in choices):
            raise InvalidResponseError("the answer has no choices")
        return data, choices

    def whole_answer(self, events: list[dict[str, Any]]) -> dict[str, Any]:
        """Server-sent chunks -> the shape of a non-streamed answer."""
        raise NotImplementedError

    def choices_fields(self) -> list[pa.Field]:
        """The `choices` column (every choice's text) that an answer with n > 1 fills."""
        return [pa.field("choices", pa.list_(pa.string()))] if self.choices > 1 else []

