"""Every parsed answer is checked against its endpoint's Arrow schema: the generic value checks, the
parse template, and the bad answers servers have really sent (answers/*.json); no server."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from pipeline.endpoints import ENDPOINT_CLASSES
from pipeline.endpoints.base import (
    Endpoint,
    HttpResponse,
    Item,
    Request,
    content_text,
    fold_stream,
    usage_counts,
    value_check,
)
from pipeline.errors import AnswerCountError, InvalidResponseError
from pipeline.sinks.parquet import records_to_table
from pipeline.sources.base import Row
from pipeline.spec import parse_spec

ANSWERS = Path(__file__).parent / "answers"
INPUTS = {"embeddings": {"text": "text"}, "chat": {"prompt": "p"}, "completions": {"prompt": "p"},
          "images": {"prompt": "p"}, "transcription": {}, "responses": {"prompt": "p"}}


def endpoint_of(tmp_path: Path, kind: str, params: dict[str, Any]) -> Endpoint:
    raw = {"name": "a", "endpoint": kind, "input": {"path": str(tmp_path), **INPUTS[kind]},
           "output": {"path": str(tmp_path / "out")}, "params": params}
    return ENDPOINT_CLASSES[kind](parse_spec(raw, tmp_path / "job.toml", env={}))


def request_of(endpoint: Endpoint, inputs: int, stream: bool = False) -> Request:
    items = [Item(Row(f"r{i}", {}, i + 1), None, tokens=5) for i in range(inputs)]
    return Request(endpoint.op, items, accept="sse" if stream else "json")


def response_of(case: dict[str, Any]) -> HttpResponse:
    body = json.dumps(case.get("answer", {})).encode()  # NaN and Infinity written bare, as the servers did
    return HttpResponse(200, {}, body, 0.01, "req-7", events=case.get("events", []))


CASES = sorted(ANSWERS.glob("*.json"))


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_recorded_answers(tmp_path: Path, path: Path) -> None:
    """Refused answers raise InvalidResponseError naming the problem; accepted ones give writable rows."""
    case = json.loads(path.read_text())
    endpoint = endpoint_of(tmp_path, case["endpoint"], case["params"])
    request = request_of(endpoint, case["inputs"], stream=bool(case["params"].get("stream")))
    if "refused" in case:
        with pytest.raises(InvalidResponseError) as caught:
            endpoint.parse(request, response_of(case))
        assert case["refused"] in caught.value.message
        assert type(caught.value).__name__ == case.get("error", "InvalidResponseError")
        assert (caught.value.status, caught.value.request_id) == (200, "req-7")
        return
    (result,) = endpoint.parse(request, response_of(case))
    assert {k: result[k] for k in case["accepted"]} == case["accepted"]
    schema = pa.schema([f for f in endpoint.result_fields() if f.name in result])
    assert records_to_table([result], schema).num_rows == 1  # what the part write will do with it


@pytest.mark.parametrize(("type_", "value", "stored"), [
    (pa.string(), "x", "x"), (pa.string(), None, None),
    (pa.int64(), 3, 3), (pa.int64(), 3.0, 3), (pa.int64(), None, None),
    (pa.int32(), 2**31 - 1, 2**31 - 1),
    (pa.float64(), 1, 1.0), (pa.float64(), 2.5, 2.5),
    (pa.bool_(), False, False),
    (pa.list_(pa.string()), ["a", None], ["a", None]),
    (pa.list_(pa.int64()), [1, 2.0], [1, 2]),
    (pa.struct([("id", pa.int64()), ("start", pa.float64())]), {"id": 1, "start": 0}, {"id": 1, "start": 0.0}),
])
def test_values_a_column_accepts(type_: pa.DataType, value: Any, stored: Any) -> None:
    checked = value_check(type_)(value)
    assert checked == stored and type(checked) is type(stored)


@pytest.mark.parametrize(("type_", "value", "problem"), [
    (pa.string(), ["a"], "a list is not a string"),
    (pa.string(), 5, "an int is not a string"),
    (pa.int64(), True, "a bool is not an integer"),
    (pa.int64(), math.nan, "NaN is not an integer"),
    (pa.int64(), 2.5, "a float is not an integer"),
    (pa.int64(), "12", "a str is not an integer"),
    (pa.int64(), 2**63, "out of range for int64"),
    (pa.int32(), 2**31, "out of range for int32"),
    (pa.float64(), math.inf, "Infinity is not a finite number"),
    (pa.float64(), -math.inf, "-Infinity is not a finite number"),
    (pa.float64(), "1.5", "a str is not a number"),
    (pa.float64(), False, "a bool is not a number"),
    (pa.bool_(), 1, "an int is not a boolean"),
    (pa.list_(pa.string()), "abc", "a str is not a list"),
    (pa.list_(pa.string()), ["a", 1], "an int is not a string"),
    (pa.struct([("start", pa.float64())]), [0.0], "a list is not an object"),
    (pa.struct([("start", pa.float64())]), {"start": math.nan}, "NaN is not a finite number"),
])
def test_values_a_column_refuses(type_: pa.DataType, value: Any, problem: str) -> None:
    with pytest.raises(ValueError, match=re.escape(problem)):
        value_check(type_)(value)


@pytest.mark.parametrize(("value", "problem"), [
    (None, "a NoneType is not a vector"), (np.zeros(0, np.float32), "not one non-empty row"),
    (np.zeros((2, 2), np.float32), "not one non-empty row"), (np.array(["a"]), "not a vector of floats"),
    (np.array([1.0, np.nan], np.float32), "NaN or infinite"), (np.array([np.inf], np.float32), "NaN or infinite"),
    ([1.0, "x"], "not numbers"),
])
def test_vectors_must_be_one_finite_row(value: Any, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        value_check(pa.list_(pa.float32()))(value)


def test_vector_lists_become_arrays() -> None:
    vector = value_check(pa.list_(pa.float32()))([0.5, 1])
    assert isinstance(vector, np.ndarray) and vector.tolist() == [0.5, 1.0]


class Echo(Endpoint):
    """An endpoint whose answer is its result list, to test the parse template alone."""

    kind, op = "echo", "echo"

    def parse_answer(self, request: Request, response: HttpResponse) -> list[dict[str, Any]]:
        return response.json()

    def result_fields(self) -> list[pa.Field]:
        return [pa.field("n", pa.int64())]


def test_parse_checks_every_result_and_leaves_private_keys(tmp_path: Path) -> None:
    echo = Echo(parse_spec({"name": "e", "endpoint": "chat", "input": {"path": str(tmp_path), "prompt": "p"}},
                           tmp_path / "job.toml", env={}))
    two = request_of(echo, 2)
    body = [{"n": 1.0, "_pending": [1, "x"], "other": object.__name__}, {"n": 2}]
    answer = HttpResponse(200, {}, json.dumps(body).encode(), 0.1, "req-1")
    assert echo.parse(two, answer) == [{"n": 1, "_pending": [1, "x"], "other": "object"}, {"n": 2}]
    with pytest.raises(InvalidResponseError, match="column 'n': NaN is not an integer"):
        echo.parse(two, HttpResponse(200, {}, b'[{"n": 1}, {"n": NaN}]', 0.1))
    with pytest.raises(AnswerCountError, match="1 results for 2 inputs") as caught:
        echo.parse(two, HttpResponse(200, {}, b'[{"n": 1}]', 0.1, "req-2"))
    assert (caught.value.expected, caught.value.got, caught.value.request_id) == (2, 1, "req-2")


@pytest.mark.parametrize(("content", "text"), [
    (None, None), ("plain", "plain"), ([], ""),
    ([{"type": "text", "text": "a"}, {"type": "output_text", "text": "b", "annotations": []}], "ab"),
])
def test_content_text_joins_text_parts(content: Any, text: str | None) -> None:
    assert content_text(content) == text


@pytest.mark.parametrize(("content", "problem"), [
    ({"text": "a"}, "content is a dict"), (3, "content is an int"),
    ([{"type": "refusal", "refusal": "no"}], "not text (refusal)"), (["a"], "not text (a str)"),
    ([{"type": "text", "text": None}], "not text (text)"), ([{"type": ["text"]}], "not text (a dict)"),
])
def test_content_text_refuses_other_content(content: Any, problem: str) -> None:
    with pytest.raises(InvalidResponseError, match=re.escape(problem)):
        content_text(content)


def test_usage_counts() -> None:
    assert usage_counts(None, ["prompt_tokens"]) == {}
    assert usage_counts({"prompt_tokens": 4.0, "other": math.nan}, ["prompt_tokens", "total_tokens"]) == {
        "prompt_tokens": 4}
    for bad in (math.nan, -1, True, "4", 4.5):
        with pytest.raises(InvalidResponseError, match=r"usage\.prompt_tokens"):
            usage_counts({"prompt_tokens": bad}, ["prompt_tokens"])
    with pytest.raises(InvalidResponseError, match="usage is a list"):
        usage_counts([], ["prompt_tokens"])


def delta(choice: dict[str, Any]) -> Any:
    return (choice.get("delta") or {}).get("content")


@pytest.mark.parametrize("events", [
    [],
    [{"choices": [{"index": 0, "delta": {"content": "Hi"}}]}],
    [{"choices": [{"index": 0, "delta": {"content": "a"}, "finish_reason": "stop"},
                  {"index": 1, "delta": {"content": "b"}}]}],
])
def test_a_stream_without_a_finish_reason_is_invalid(events: list[dict[str, Any]]) -> None:
    with pytest.raises(InvalidResponseError, match="the stream ended without a finish reason"):
        fold_stream(events, delta)


@pytest.mark.parametrize("events", [[3], [{"choices": {"index": 0}}], [{"choices": [{"index": "0"}]}]])
def test_a_stream_of_malformed_chunks_is_invalid(events: list[Any]) -> None:
    with pytest.raises(InvalidResponseError, match="streamed chunk"):
        fold_stream(events, delta)
