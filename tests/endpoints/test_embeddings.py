"""Embeddings endpoint: batching, base64 decoding, row validation; no server."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
import pytest

from pipeline.endpoints.base import HttpResponse, RowError
from pipeline.endpoints.embeddings import Embeddings
from pipeline.errors import AnswerCountError, InvalidResponseError
from pipeline.sources.base import Row
from pipeline.spec import parse_spec


def make_spec(tmp_path: Path, **limits: int):
    raw = {"name": "e", "endpoint": "embeddings", "input": {"path": str(tmp_path), "text": "text"},
           "limits": limits, "params": {"dimensions": 4}}
    return parse_spec(raw, tmp_path / "job.toml", env={})


def rows(n: int, text: str = "hello world") -> list[Row]:
    return [Row(f"r{i}", {"text": text}, i + 1) for i in range(n)]


def test_batches_respect_size_and_token_budget(tmp_path: Path) -> None:
    endpoint = Embeddings(make_spec(tmp_path, batch_size=3, batch_tokens=1200))
    items = [endpoint.prepare(r) for r in rows(7)]
    assert [len(b) for b in endpoint.group(items)] == [3, 3, 1]
    big = [endpoint.prepare(r) for r in rows(4, "word " * 300)]  # ~300 tokens each
    assert [len(b) for b in endpoint.group(big)] == [3, 1]
    assert [len(b) for b in endpoint.group(big, max_tokens=800)] == [2, 2]


def test_request_asks_for_base64_and_passes_params(tmp_path: Path) -> None:
    endpoint = Embeddings(make_spec(tmp_path))
    request = endpoint.build([endpoint.prepare(r) for r in rows(2)])
    assert request.json == {"dimensions": 4, "input": ["hello world", "hello world"], "encoding_format": "base64"}
    assert request.tokens == 2 * endpoint.prepare(rows(1)[0]).tokens


@pytest.mark.parametrize(("fields", "reason"), [
    ({}, "no 'text' value"), ({"text": 5}, "must be a string"), ({"text": "  "}, "is empty"),
    ({"text": "x" * 40_000}, "over the 8192-token input limit"),
])
def test_bad_rows_are_row_errors(tmp_path: Path, fields: dict, reason: str) -> None:
    with pytest.raises(RowError, match=reason):
        Embeddings(make_spec(tmp_path)).prepare(Row("bad", fields, 3))


def test_decodes_base64_and_float_lists_in_index_order(tmp_path: Path) -> None:
    endpoint = Embeddings(make_spec(tmp_path))
    request = endpoint.build([endpoint.prepare(r) for r in rows(2)])
    v0, v1 = np.array([1, 2, 3, 4], "<f4"), np.array([0.5, -0.5, 0.25, 0], "<f4")
    body = {"data": [{"index": 1, "embedding": v1.tolist()},
                     {"index": 0, "embedding": base64.b64encode(v0.tobytes()).decode()}],
            "usage": {"prompt_tokens": 10, "total_tokens": 10}}
    results = endpoint.parse(request, HttpResponse(200, {}, json.dumps(body).encode(), 0.01))
    assert np.array_equal(results[0]["embedding"], v0)
    assert np.array_equal(results[1]["embedding"], v1)
    assert sum(r["prompt_tokens"] for r in results) == 10


def test_wrong_count_is_invalid_response(tmp_path: Path) -> None:
    endpoint = Embeddings(make_spec(tmp_path))
    request = endpoint.build([endpoint.prepare(r) for r in rows(2)])
    with pytest.raises(InvalidResponseError):
        endpoint.parse(request, HttpResponse(200, {}, b'{"data": []}', 0.01))
    with pytest.raises(InvalidResponseError):
        endpoint.parse(request, HttpResponse(200, {}, b'{"data": [', 0.01))


def answer_of(*vectors: list[float], usage: dict | None = None) -> HttpResponse:
    body = {"data": [{"index": i, "embedding": v} for i, v in enumerate(vectors)], "usage": usage}
    return HttpResponse(200, {}, json.dumps(body).encode(), 0.01, "req-1")


def test_first_accepted_length_fixes_the_run_length(tmp_path: Path) -> None:
    """Without `dimensions`, one column still holds one length: the first answer accepted sets it."""
    spec = parse_spec({"name": "e", "endpoint": "embeddings", "input": {"path": str(tmp_path), "text": "text"}},
                      tmp_path / "job.toml", env={})
    endpoint = Embeddings(spec)
    one = endpoint.build([endpoint.prepare(r) for r in rows(1)])
    with pytest.raises(InvalidResponseError, match="NaN or infinite"):
        endpoint.parse(one, answer_of([0.1, float("nan")]))  # refused: it fixes nothing
    endpoint.parse(one, answer_of([0.1, 0.2, 0.3]))
    with pytest.raises(InvalidResponseError, match="earlier answers had 3"):
        endpoint.parse(one, answer_of([0.1, 0.2]))
    assert endpoint.parse(one, answer_of([0.3, 0.2, 0.1]))[0]["embedding"].tolist() == pytest.approx([0.3, 0.2, 0.1])


def test_fewer_vectors_is_an_answer_count_error(tmp_path: Path) -> None:
    endpoint = Embeddings(make_spec(tmp_path))
    request = endpoint.build([endpoint.prepare(r) for r in rows(16)])
    with pytest.raises(AnswerCountError, match="1 embeddings for 16 inputs") as caught:
        endpoint.parse(request, answer_of([0.1, 0.2, 0.3, 0.4]))
    assert (caught.value.expected, caught.value.got, caught.value.request_id) == (16, 1, "req-1")


def test_usage_is_shared_when_valid_and_estimated_when_absent(tmp_path: Path) -> None:
    endpoint = Embeddings(make_spec(tmp_path))
    request = endpoint.build([endpoint.prepare(r) for r in rows(2)])
    vectors = ([1.0, 0, 0, 0], [0, 1.0, 0, 0])
    assert [r["prompt_tokens"] for r in endpoint.parse(request, answer_of(*vectors, usage={"prompt_tokens": 10.0}))] \
        == [5, 5]
    estimates = [item.tokens for item in request.items]
    assert [r["prompt_tokens"] for r in endpoint.parse(request, answer_of(*vectors))] == estimates
    with pytest.raises(InvalidResponseError, match=r"usage\.prompt_tokens is -3"):
        endpoint.parse(request, answer_of(*vectors, usage={"prompt_tokens": -3}))
