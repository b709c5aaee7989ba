"""Embeddings: many rows per request, base64 vectors decoded with numpy."""

from __future__ import annotations

import base64
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
import pyarrow as pa

from pipeline.endpoints.base import Endpoint, HttpResponse, Item, Request, RowError, text_field
from pipeline.errors import InvalidResponseError
from pipeline.sources.base import Row
from pipeline.tokens import estimate_text_tokens

MAX_INPUT_TOKENS = 8192
MAX_INPUTS = 2048


class Embeddings(Endpoint):
    kind = "embeddings"
    op = "embeddings"

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
        data = response.json()
        entries = data.get("data") if isinstance(data, dict) else None
        if not isinstance(entries, list) or len(entries) != len(request.items):
            raise InvalidResponseError(f"expected {len(request.items)} embeddings in the answer",
                                       status=response.status, request_id=response.request_id)
        vectors: list[np.ndarray | None] = [None] * len(entries)
        for position, entry in enumerate(entries):
            index = entry.get("index", position) if isinstance(entry, dict) else position
            if not isinstance(index, int) or not 0 <= index < len(entries):
                raise InvalidResponseError(f"embedding index {index!r} out of range", request_id=response.request_id)
            vectors[index] = decode_vector(entry.get("embedding") if isinstance(entry, dict) else None)
        shares = _token_shares(request, data.get("usage"))
        return [{"embedding": vector, "prompt_tokens": share} for vector, share in zip(vectors, shares, strict=True)]

    def result_fields(self) -> list[pa.Field]:
        return [pa.field("embedding", pa.list_(pa.float32())), pa.field("prompt_tokens", pa.int64())]


def decode_vector(value: Any) -> np.ndarray:
    """A base64 string of little-endian float32, or a plain list (servers that ignore encoding_format)."""
    if isinstance(value, str):
        try:
            raw = base64.b64decode(value, validate=True)
        except ValueError:
            raise InvalidResponseError("an embedding is not valid base64") from None
        if len(raw) % 4:
            raise InvalidResponseError("an embedding's byte length is not a multiple of 4")
        return np.frombuffer(raw, dtype="<f4")
    if isinstance(value, list) and value:
        return np.asarray(value, dtype=np.float32)
    raise InvalidResponseError("an embedding is missing from the answer")


def _token_shares(request: Request, usage: Any) -> list[int]:
    """Split the request's prompt_tokens over its rows in proportion to their estimates."""
    estimates = [item.tokens for item in request.items]
    total = usage.get("prompt_tokens") if isinstance(usage, dict) else None
    if not isinstance(total, int):
        return estimates
    scale = total / max(1, sum(estimates))
    return [round(e * scale) for e in estimates]
