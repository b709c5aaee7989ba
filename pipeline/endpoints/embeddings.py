"""Embeddings: many rows per request, base64 vectors decoded with numpy."""

from __future__ import annotations

import base64
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
import pyarrow as pa

from pipeline.endpoints.base import Endpoint, HttpResponse, Item, Request, RowError, text_field, usage_counts
from pipeline.errors import AnswerCountError, InvalidResponseError
from pipeline.sources.base import Row
from pipeline.spec import JobSpec
from pipeline.tokens import estimate_text_tokens

MAX_INPUT_TOKENS = 8192
MAX_INPUTS = 2048


class Embeddings(Endpoint):
    kind = "embeddings"
    op = "embeddings"

    def __init__(self, spec: JobSpec) -> None:
        super().__init__(spec)
        self.dimension: int | None = None  # the vector length of this run, fixed by its first accepted answer

    def prepare(self, row: Row) -> Item:
        assert self.spec.input.text is not None
        text = text_field(row, self.spec.input.text)
        tokens = estimate_text_tokens(text)
        if tokens > MAX_INPUT_TOKENS:
            raise RowError(f"row {row.id!r} (line {row.line}): text is about {tokens} tokens, over the "
                           f"{MAX_INPUT_TOKENS}-token input limit; split it into smaller passages")
        return Item(row, text, tokens)

    def group(self, items: Iterable[Item], max_tokens: int | None = None) -> Iterator[list[Item]]:
        """Pack rows up to batch_size inputs and a token budget per request."""
        limit_rows = min(self.spec.limits.batch_size, MAX_INPUTS)
        limit_tokens = min(self.spec.limits.batch_tokens, max_tokens or self.spec.limits.batch_tokens)
        batch: list[Item] = []
        tokens = 0
        for item in items:
            if batch and (len(batch) >= limit_rows or tokens + item.tokens > limit_tokens):
                yield batch
                batch, tokens = [], 0
            batch.append(item)
            tokens += item.tokens
        if batch:
            yield batch

    def build(self, batch: list[Item]) -> Request:
        body = {**self.params, "input": [item.payload for item in batch], "encoding_format": "base64"}
        return Request(self.op, batch, json=body, tokens=sum(item.tokens for item in batch))

    def parse(self, request: Request, response: HttpResponse) -> list[dict[str, Any]]:
        results = super().parse(request, response)
        self.dimension = len(results[0]["embedding"])  # accepted whole: later answers must match it
        return results

    def parse_answer(self, request: Request, response: HttpResponse) -> list[dict[str, Any]]:
        data = response.json()
        entries = data.get("data") if isinstance(data, dict) else None
        if not isinstance(entries, list) or not all(isinstance(entry, dict) for entry in entries):
            raise InvalidResponseError("the answer holds no list of embeddings")
        if len(entries) != len(request.items):
            raise AnswerCountError(f"the answer holds {len(entries)} embeddings for {len(request.items)} inputs",
                                   expected=len(request.items), got=len(entries))
        vectors = [decode_vector(entry.get("embedding")) for entry in in_index_order(entries)]
        self._check_length(vectors)
        shares = _token_shares(request, data.get("usage"))
        return [{"embedding": vector, "prompt_tokens": share} for vector, share in zip(vectors, shares, strict=True)]

    def _check_length(self, vectors: list[np.ndarray]) -> None:
        """One length for every vector of the column: the job's `dimensions`, and the length of the first
        answer this run accepted (a server that ignores `dimensions` would otherwise mix lengths in one column)."""
        lengths = {len(vector) for vector in vectors}
        if len(lengths) > 1:
            raise InvalidResponseError(f"the answer's embeddings differ in length ({sorted(lengths)})")
        (length,) = lengths
        wanted = self.params.get("dimensions")
        if wanted is not None and length != wanted:
            raise InvalidResponseError(f"the embeddings have {length} values, but the job asks for "
                                       f"dimensions = {wanted}")
        if self.dimension is not None and length != self.dimension:
            raise InvalidResponseError(f"the embeddings have {length} values, but this run's earlier answers had "
                                       f"{self.dimension} (one column holds one length)")

    def result_fields(self) -> list[pa.Field]:
        return [pa.field("embedding", pa.list_(pa.float32())), pa.field("prompt_tokens", pa.int64())]


def in_index_order(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The entries sorted by their `index` (their position when a server gives none), which must be
    0..n-1 each once: a duplicate would leave some input without a vector."""
    ordered: list[dict[str, Any] | None] = [None] * len(entries)
    for position, entry in enumerate(entries):
        index = entry.get("index", position)
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(entries):
            raise InvalidResponseError(f"embedding index {index!r} is out of range for {len(entries)} inputs")
        if ordered[index] is not None:
            raise InvalidResponseError(f"embedding index {index} appears twice in the answer")
        ordered[index] = entry
    return ordered  # type: ignore[return-value]  # n distinct indices in 0..n-1 fill every place


def decode_vector(value: Any) -> np.ndarray:
    """A base64 string of little-endian float32, or a plain list (servers that ignore encoding_format).
    Finiteness is checked with the other columns (Endpoint.parse)."""
    if isinstance(value, str):
        try:
            raw = base64.b64decode(value, validate=True)
        except ValueError:
            raise InvalidResponseError("an embedding is not valid base64") from None
        if not raw or len(raw) % 4:
            raise InvalidResponseError(f"an embedding's byte length ({len(raw)}) is not a positive multiple of 4")
        return np.frombuffer(raw, dtype="<f4")
    if isinstance(value, list) and value:
        try:
            with np.errstate(over="ignore"):  # a value beyond float32 becomes inf, refused with the NaNs
                return np.asarray(value, dtype=np.float32)
        except (TypeError, ValueError, OverflowError):
            raise InvalidResponseError("an embedding is a list that holds values other than numbers") from None
    raise InvalidResponseError("an embedding is missing from the answer")


def _token_shares(request: Request, usage: Any) -> list[int]:
    """Split the request's prompt_tokens over its rows in proportion to their estimates
    (the estimates themselves when the answer reports no usage)."""
    estimates = [item.tokens for item in request.items]
    total = usage_counts(usage, ("prompt_tokens", "total_tokens")).get("prompt_tokens")
    if total is None:
        return estimates
    scale = total / max(1, sum(estimates))
    return [round(e * scale) for e in estimates]
