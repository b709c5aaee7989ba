"""JSON Schema -> typed Arrow columns (table-driven), answers validated against the schema, refusals,
and the chat endpoint's typed columns and usage details."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from pipeline.endpoints.base import HttpResponse, Item, Request
from pipeline.endpoints.chat import Chat
from pipeline.endpoints.structured import OutputSchema, output_schema_of, typed_columns
from pipeline.errors import RefusalError, SchemaMismatchError, SpecError, is_retryable
from pipeline.sinks.parquet import records_to_table
from pipeline.sources.base import Row
from pipeline.spec import parse_spec


def schema_params(properties: dict[str, Any], required: list[str] | None = None, **extra: Any) -> dict[str, Any]:
    schema = {"type": "object", "properties": properties, "required": required or list(properties),
              "additionalProperties": False, **extra}
    return {"response_format": {"type": "json_schema", "json_schema": {"name": "t", "strict": True,
                                                                       "schema": schema}}}


def mapped(properties: dict[str, Any], **extra: Any) -> OutputSchema:
    output = output_schema_of(schema_params(properties, **extra), "chat", {"content", "id"}, "job.toml")
    assert output is not None
    return output


@pytest.mark.parametrize(("schema", "arrow"), [
    ({"type": "string"}, pa.string()),
    ({"type": "string", "format": "date-time"}, pa.string()),
    ({"type": "integer"}, pa.int64()),
    ({"type": "number"}, pa.float64()),
    ({"type": "boolean"}, pa.bool_()),
    ({"type": "string", "enum": ["low", "high"]}, pa.string()),
    ({"enum": ["low", "high"]}, pa.string()),
    ({"enum": [1, 2, 3]}, pa.int64()),
    ({"const": True}, pa.bool_()),
    ({"type": ["string", "null"]}, pa.string()),
    ({"anyOf": [{"type": "integer"}, {"type": "null"}]}, pa.int64()),
    ({"type": "array", "items": {"type": "string"}}, pa.list_(pa.field("item", pa.string()))),
    ({"type": "array", "items": {"type": "array", "items": {"type": "number"}}},
     pa.list_(pa.field("item", pa.list_(pa.field("item", pa.float64()))))),
    ({"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": ["string", "null"]}}},
     pa.struct([("a", pa.int64()), ("b", pa.string())])),
    ({"type": "array", "items": {"type": "object", "properties": {"k": {"type": "string"}}}},
     pa.list_(pa.field("item", pa.struct([("k", pa.string())])))),
    ({"$ref": "#/$defs/level"}, pa.string()),
])
def test_every_json_schema_type_has_its_column(schema: dict[str, Any], arrow: pa.DataType) -> None:
    output = mapped({"x": schema}, **{"$defs": {"level": {"type": "string", "enum": ["a", "b"]}}})
    (field,) = output.fields
    assert field.name == "x" and field.type == arrow and field.nullable


@pytest.mark.parametrize(("properties", "message"), [
    ({"x": {"anyOf": [{"type": "string"}, {"type": "integer"}]}}, "properties.x.anyOf: a union of several types"),
    ({"x": {"type": ["string", "integer"]}}, "properties.x.type: ['string', 'integer']: a column has one type"),
    ({"x": {"type": "object"}}, "properties.x: an object without properties"),
    ({"x": {"type": "array"}}, "properties.x.items: an array needs one `items` schema"),
    ({"x": {"allOf": [{"type": "string"}]}}, "properties.x.allOf: allOf cannot be a column"),
    ({"x": {"description": "anything"}}, "properties.x: no type"),
    ({"x": {"$ref": "#/$defs/node"}}, "refers to itself: a recursive schema"),
    ({"x": {"$ref": "https://example.com/s.json"}}, "only local references"),
    ({"content": {"type": "string"}}, "properties.content: clashes with the built-in column 'content'"),
    ({"x": {"type": "null"}}, "always null is no column"),
])
def test_what_cannot_be_a_column_is_refused_in_one_line(properties: dict[str, Any], message: str) -> None:
    defs = {"$defs": {"node": {"type": "object", "properties": {"next": {"$ref": "#/$defs/node"}}}}}
    with pytest.raises(SpecError) as caught:
        mapped(properties, **defs)
    assert message in str(caught.value) and "\n" not in str(caught.value)
    assert str(caught.value).startswith("job.toml: params.response_format.json_schema.schema")


def test_the_top_level_must_be_an_object_with_properties() -> None:
    params = {"response_format": {"type": "json_schema", "json_schema": {"name": "t", "schema": {"type": "array"}}}}
    with pytest.raises(SpecError, match="must be an object with properties"):
        output_schema_of(params, "chat", (), "job.toml")
    with pytest.raises(SpecError, match="name: required"):
        output_schema_of({"response_format": {"type": "json_schema", "json_schema": {"schema": {}}}}, "chat", (), "j")
    assert output_schema_of({"response_format": {"type": "json_object"}}, "chat", (), "j") is None
    fmt = {"text": {"format": {"type": "json_schema", "name": "r", "schema": {
        "type": "object", "properties": {"n": {"type": "integer"}}}}}}
    output = output_schema_of(fmt, "responses", (), "j")
    assert output is not None and output.fields[0].type == pa.int64()


TICKET = {"label": {"type": "string", "enum": ["bug", "question", "praise"]}, "urgency": {"type": "integer"},
          "score": {"type": "number"}, "spam": {"type": "boolean"},
          "tags": {"type": "array", "items": {"type": "string"}},
          "owner": {"type": "object", "properties": {"team": {"type": "string"}, "size": {"type": "integer"}},
                    "required": ["team", "size"], "additionalProperties": False},
          "note": {"type": ["string", "null"]}}


def test_a_matching_answer_gives_typed_values_that_arrow_writes() -> None:
    output = mapped(TICKET, required=["label", "urgency", "score", "spam", "tags", "owner"])
    answer = {"label": "bug", "urgency": 3, "score": 2, "spam": False, "tags": ["ui"],
              "owner": {"team": "web", "size": 4}}
    values = typed_columns(output, json.dumps(answer))
    assert values == {**answer, "score": 2.0, "note": None}
    table = records_to_table([values], pa.schema(list(output.fields)))
    assert table.schema.field("owner").type == pa.struct([("team", pa.string()), ("size", pa.int64())])


@pytest.mark.parametrize(("content", "message"), [
    ("{\"label\": \"bug\", \"urg", "not JSON"),
    (json.dumps({"urgency": 1, "score": 1.0, "spam": True, "tags": [], "owner": {"team": "a", "size": 1},
                 "note": None}), "'label' is a required property"),
    (json.dumps({"label": "bug", "urgency": "3", "score": 1.0, "spam": True, "tags": [],
                 "owner": {"team": "a", "size": 1}, "note": None}), "at urgency: '3' is not of type 'integer'"),
    (json.dumps({"label": "rant", "urgency": 3, "score": 1.0, "spam": True, "tags": [],
                 "owner": {"team": "a", "size": 1}, "note": None}), "at label: 'rant' is not one of"),
    (json.dumps({"label": "bug", "urgency": 3, "score": 1.0, "spam": True, "tags": [7],
                 "owner": {"team": "a", "size": 1}, "note": None}), "at tags/0"),
    (json.dumps({"label": "bug", "urgency": 3, "score": 1.0, "spam": True, "tags": [],
                 "owner": {"team": "a"}, "note": None}), "at owner: 'size' is a required property"),
    (json.dumps([1, 2]), "(the whole answer)"),
    (None, "no content"),
])
def test_every_kind_of_invalid_answer_is_a_schema_mismatch(content: str | None, message: str) -> None:
    output = mapped(TICKET)
    with pytest.raises(SchemaMismatchError) as caught:
        typed_columns(output, content)
    assert message in caught.value.message and caught.value.code == "schema_mismatch"
    assert is_retryable(caught.value)
    if content:
        assert caught.value.detail == content  # the raw content is kept for inspection


def chat(tmp_path: Path, params: dict[str, Any]) -> Chat:
    raw = {"name": "c", "endpoint": "chat", "input": {"path": str(tmp_path / "in.jsonl"), "prompt": "p"},
           "output": {"path": str(tmp_path / "out")}, "params": params}
    return Chat(parse_spec(raw, tmp_path / "job.toml", env={}))


def chat_answer(message: dict[str, Any], usage: dict[str, Any] | None = None) -> HttpResponse:
    body = {"choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", **message}}],
            "usage": usage or {"prompt_tokens": 2000, "completion_tokens": 50, "total_tokens": 2050,
                               "prompt_tokens_details": {"cached_tokens": 1792},
                               "completion_tokens_details": {"reasoning_tokens": 30}}}
    return HttpResponse(200, {}, json.dumps(body).encode(), 0.1, "req-1")


ONE = Request("chat/completions", [Item(Row("a", {}, 1), None)])


def test_chat_answers_give_typed_columns_and_usage_details(tmp_path: Path) -> None:
    endpoint = chat(tmp_path, schema_params({"label": {"enum": ["a", "b"]}, "n": {"type": "integer"}}))
    names = [f.name for f in endpoint.result_fields()]
    assert names[-2:] == ["label", "n"] and {"content", "reasoning_tokens", "cached_tokens"} <= set(names)
    (result,) = endpoint.parse(ONE, chat_answer({"content": '{"label": "a", "n": 2}'}))
    assert (result["label"], result["n"], result["content"]) == ("a", 2, '{"label": "a", "n": 2}')
    assert (result["cached_tokens"], result["reasoning_tokens"]) == (1792, 30)
    usage = endpoint.usage([result])
    assert (usage.tokens_in, usage.tokens_cached, usage.tokens_out, usage.tokens_reasoning) == (2000, 1792, 50, 30)
    with pytest.raises(SchemaMismatchError, match="'c' is not one of"):
        endpoint.parse(ONE, chat_answer({"content": '{"label": "c", "n": 2}'}))


def test_a_refusal_is_a_failure_with_its_reason_never_a_success(tmp_path: Path) -> None:
    endpoint = chat(tmp_path, schema_params({"label": {"type": "string"}}))
    with pytest.raises(RefusalError, match=r"the model refused: I can't help with that\.") as caught:
        endpoint.parse(ONE, chat_answer({"content": None, "refusal": "I can't help with that."}))
    assert caught.value.code == "refusal" and not is_retryable(caught.value)


def test_a_schema_file_is_read_at_validate_time(tmp_path: Path) -> None:
    (tmp_path / "ticket.schema.json").write_text(json.dumps({"type": "object", "properties": {
        "label": {"type": "string"}}, "required": ["label"]}))
    params = {"response_format": {"type": "json_schema", "json_schema": {"name": "t",
                                                                         "schema_file": "ticket.schema.json"}}}
    endpoint = chat(tmp_path, params)
    assert endpoint.output is not None and endpoint.output.fields[0].name == "label"
    assert endpoint.params["response_format"]["json_schema"]["schema"]["required"] == ["label"]
    params["response_format"]["json_schema"] = {"name": "t", "schema_file": "missing.json"}
    with pytest.raises(SpecError, match="schema_file: cannot read"):
        chat(tmp_path, params)
