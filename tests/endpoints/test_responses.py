"""Responses endpoint: input and instructions from each input mapping, token estimates, plain and streamed
answers, incomplete, refused, failed and malformed ones, json_schema typed columns; no server.
(Recorded misbehaving answers: answers/responses-*.json, run by test_base.py.)"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from pipeline.endpoints import ENDPOINT_CLASSES
from pipeline.endpoints.base import HttpResponse, Item, Request, RowError
from pipeline.endpoints.chat import DEFAULT_COMPLETION_TOKENS
from pipeline.endpoints.files import FileFacts, FileNeed
from pipeline.endpoints.responses import Responses, assemble_stream
from pipeline.errors import InvalidResponseError, RefusalError, SchemaMismatchError, SpecError, is_retryable
from pipeline.sinks.parquet import records_to_table
from pipeline.sources.base import Row
from pipeline.spec import parse_spec


def make(tmp_path: Path, inputs: dict[str, Any], params: dict[str, Any] | None = None) -> Responses:
    raw = {"name": "r", "endpoint": "responses", "input": {"path": str(tmp_path), **inputs},
           "params": params or {}}
    endpoint = ENDPOINT_CLASSES["responses"](parse_spec(raw, tmp_path / "job.toml", env={}))
    assert isinstance(endpoint, Responses)
    return endpoint


def body(text: str | None = "Hello", status: str = "completed", **extra: Any) -> dict[str, Any]:
    content = [] if text is None else [{"type": "output_text", "text": text, "annotations": []}]
    answer = {"id": "resp_67c", "object": "response", "status": status, "error": None, "incomplete_details": None,
              "model": "gpt-4.1-mini",
              "output": [{"type": "reasoning", "id": "rs_1", "summary": []},
                         {"type": "message", "id": "msg_1", "role": "assistant", "content": content}],
              "usage": {"input_tokens": 36, "input_tokens_details": {"cached_tokens": 12}, "output_tokens": 87,
                        "output_tokens_details": {"reasoning_tokens": 40}, "total_tokens": 123}}
    return {**answer, **extra}


def plain(answer: dict[str, Any]) -> HttpResponse:
    return HttpResponse(200, {}, json.dumps(answer).encode(), 0.2, "req-1")


def streamed(events: list[dict[str, Any]], ttft_s: float | None = 0.0421) -> HttpResponse:
    return HttpResponse(200, {}, b"", 0.3, "req-2", events=events, ttft_s=ttft_s)


def request_for(endpoint: Responses, fields: dict[str, Any] | None = None) -> Request:
    return endpoint.build([endpoint.prepare(Row("a", fields or {"p": "Say hello"}, 1))])


# ---- requests


def test_a_prompt_goes_as_the_input_string_and_system_as_instructions(tmp_path: Path) -> None:
    endpoint = make(tmp_path, {"template": "Q: {question}", "system": "Be brief."},
                    {"max_output_tokens": 50, "reasoning": {"effort": "low"}, "service_tier": "flex"})
    request = request_for(endpoint, {"question": "why?"})
    assert request.json == {"max_output_tokens": 50, "reasoning": {"effort": "low"}, "service_tier": "flex",
                            "input": "Q: why?", "instructions": "Be brief."}
    assert request.op == "responses" and request.accept == "json" and not request.done_marker
    assert 50 < request.tokens < 80  # the prompt and instructions estimated, plus max_output_tokens


def test_without_system_there_are_no_instructions_and_the_default_budget(tmp_path: Path) -> None:
    request = request_for(make(tmp_path, {"prompt": "p"}))
    assert request.json == {"input": "Say hello"}
    assert DEFAULT_COMPLETION_TOKENS < request.tokens < DEFAULT_COMPLETION_TOKENS + 20


def test_a_messages_column_becomes_input_messages(tmp_path: Path) -> None:
    endpoint = make(tmp_path, {"messages": "conversation", "system": "Answer in French."})
    conversation = [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": [{"type": "text", "text": "Hello!"}]},
        {"role": "user", "content": [{"type": "text", "text": "What is this?"},
                                     {"type": "image_url", "image_url": {"url": "https://x/cat.png", "detail": "low"}},
                                     {"type": "input_file", "file_id": "file-1"}]},
    ]
    request = request_for(endpoint, {"conversation": conversation})
    assert request.json == {"instructions": "Answer in French.", "input": [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": [{"type": "output_text", "text": "Hello!"}]},
        {"role": "user", "content": [{"type": "input_text", "text": "What is this?"},
                                     {"type": "input_image", "image_url": "https://x/cat.png", "detail": "low"},
                                     {"type": "input_file", "file_id": "file-1"}]},
    ]}
    assert conversation[1]["content"] == [{"type": "text", "text": "Hello!"}]  # the row is left as it was
    with pytest.raises(RowError, match="needs a role"):
        endpoint.prepare(Row("b", {"conversation": [{"who": "me"}]}, 2))


def test_an_image_column_sends_an_input_image(tmp_path: Path) -> None:
    endpoint = make(tmp_path, {"prompt": "p", "image": "img"})
    row = Row("a", {"p": "Describe it", "img": "pics/cat.png"}, 1)
    assert endpoint.needs(row) == [FileNeed("img", str(tmp_path.parent / "pics" / "cat.png"), whole=True)]
    read = Row("a", row.fields, 1, files={"img": FileFacts("cat.png", "/nowhere/cat.png", 3, data=b"PNG")})
    (message,) = endpoint.build([endpoint.prepare(read)]).json["input"]
    assert message == {"role": "user", "content": [
        {"type": "input_text", "text": "Describe it"},
        {"type": "input_image", "image_url": "data:image/png;base64,UE5H", "detail": "auto"}]}
    remote = endpoint.prepare(Row("b", {"p": "And this?", "img": "https://example.org/x.jpg"}, 2))
    assert remote.payload[0]["content"][1] == {"type": "input_image", "image_url": "https://example.org/x.jpg",
                                               "detail": "auto"}
    assert endpoint.needs(Row("b", {"img": "https://example.org/x.jpg"}, 2)) == []


def test_stream_asks_for_events_that_end_with_the_body(tmp_path: Path) -> None:
    request = request_for(make(tmp_path, {"prompt": "p"}, {"stream": True}))
    assert request.accept == "sse" and not request.done_marker
    assert request.json == {"stream": True, "input": "Say hello"}  # no stream_options: usage comes at the end


@pytest.mark.parametrize(("params", "problem"), [
    ({"input": "x"}, "params.input: is filled"), ({"model": "gpt-4.1"}, "params.model: is filled"),
    ({"instructions": "x"}, "params.instructions: is filled"),
    ({"max_output_tokens": 0}, "params.max_output_tokens: must be a positive integer"),
    ({"background": True}, "params.background: background responses must be polled"),
])
def test_params_the_spec_refuses(tmp_path: Path, params: dict[str, Any], problem: str) -> None:
    with pytest.raises(SpecError, match=re.escape(problem)):
        make(tmp_path, {"prompt": "p"}, params)


def test_the_input_mapping_is_chats(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="responses needs prompt"):
        make(tmp_path, {})
    with pytest.raises(SpecError, match="either messages or prompt"):
        make(tmp_path, {"messages": "m", "prompt": "p"})


# ---- answers


def test_a_completed_answer(tmp_path: Path) -> None:
    endpoint = make(tmp_path, {"prompt": "p"})
    answer = body("Hel")  # every message item's output_text parts, other items left out
    answer["output"].append({"type": "message", "role": "assistant",
                             "content": [{"type": "output_text", "text": "lo"}]})
    (result,) = endpoint.parse(request_for(endpoint), plain(answer))
    assert result == {"output_text": "Hello", "status": "completed", "incomplete_reason": None, "input_tokens": 36,
                      "output_tokens": 87, "reasoning_tokens": 40, "cached_tokens": 12, "response_id": "resp_67c",
                      "ttft_ms": None}
    assert records_to_table([result], pa.schema(endpoint.result_fields())).num_rows == 1
    usage = endpoint.usage([result, result])
    assert (usage.tokens_in, usage.tokens_out, usage.tokens_cached, usage.tokens_reasoning) == (72, 174, 24, 80)


def test_an_incomplete_answer_is_a_row_with_its_status(tmp_path: Path) -> None:
    endpoint = make(tmp_path, {"prompt": "p"}, {"max_output_tokens": 16})
    answer = body("Once upon a", "incomplete", incomplete_details={"reason": "max_output_tokens"})
    (result,) = endpoint.parse(request_for(endpoint), plain(answer))
    assert (result["output_text"], result["status"], result["incomplete_reason"]) == (
        "Once upon a", "incomplete", "max_output_tokens")


def stream_events(*deltas: str, terminal: str = "response.completed",
                  response: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    created = {"type": "response.created", "sequence_number": 0,
               "response": {"id": "resp_67c", "status": "in_progress", "output": []}}
    pieces = [{"type": "response.output_text.delta", "item_id": "msg_1", "output_index": 1, "content_index": 0,
               "delta": delta, "sequence_number": n} for n, delta in enumerate(deltas, 4)]
    done = {"type": "response.output_text.done", "text": "".join(deltas)}
    return [created, {"type": "response.in_progress", "response": created["response"]}, *pieces, done,
            {"type": terminal, "sequence_number": 99, "response": response or body("".join(deltas))}]


def test_a_streamed_answer_joins_its_deltas(tmp_path: Path) -> None:
    endpoint = make(tmp_path, {"prompt": "p"}, {"stream": True})
    (result,) = endpoint.parse(request_for(endpoint), streamed(stream_events("Hel", "lo", "!")))
    assert result["output_text"] == "Hello!" and result["status"] == "completed"
    assert (result["input_tokens"], result["output_tokens"], result["ttft_ms"]) == (36, 87, 42.1)


def test_a_streamed_incomplete_answer(tmp_path: Path) -> None:
    endpoint = make(tmp_path, {"prompt": "p"}, {"stream": True})
    final = body("", "incomplete", incomplete_details={"reason": "content_filter"})
    events = stream_events("Par", "tial", terminal="response.incomplete", response=final)
    (result,) = endpoint.parse(request_for(endpoint), streamed(events))
    assert (result["output_text"], result["status"], result["incomplete_reason"]) == (
        "Partial", "incomplete", "content_filter")


def test_a_stream_with_only_its_terminal_event_reads_the_whole_response() -> None:
    assert assemble_stream([{"type": "response.completed", "response": body("Whole")}])["output"][1] == {
        "type": "message", "id": "msg_1", "role": "assistant",
        "content": [{"type": "output_text", "text": "Whole", "annotations": []}]}


@pytest.mark.parametrize("events", [
    [],
    stream_events("Hel", "lo")[:-1],  # cut before its terminal event
    [{"type": "response.output_text.delta", "delta": "x"}, {"type": "response.output_text.done", "text": "x"}],
])
def test_a_stream_without_a_terminal_event_is_invalid(tmp_path: Path, events: list[dict[str, Any]]) -> None:
    endpoint = make(tmp_path, {"prompt": "p"}, {"stream": True})
    with pytest.raises(InvalidResponseError, match="the stream ended without a terminal event") as caught:
        endpoint.parse(request_for(endpoint), streamed(events))
    assert is_retryable(caught.value) and caught.value.request_id == "req-2"


def test_failed_answers_are_invalid_and_retried(tmp_path: Path) -> None:
    endpoint = make(tmp_path, {"prompt": "p"}, {"stream": True})
    failed = body(None, "failed", error={"code": "server_error", "message": "The server had an error"})
    for events in (stream_events("Hel", terminal="response.failed", response=failed),
                   [{"type": "error", "code": "server_error", "message": "The server had an error"}]):
        with pytest.raises(InvalidResponseError, match="The server had an error") as caught:
            endpoint.parse(request_for(endpoint), streamed(events))
        assert type(caught.value) is InvalidResponseError and is_retryable(caught.value)
        assert caught.value.code == "server_error"


@pytest.mark.parametrize("stream", [False, True])
def test_a_refusal_is_a_refusal_error(tmp_path: Path, stream: bool) -> None:
    endpoint = make(tmp_path, {"prompt": "p"}, {"stream": stream})
    refusal = [{"type": "message", "role": "assistant", "content": [{"type": "refusal", "refusal": "I can't."}]}]
    if stream:
        response = streamed([{"type": "response.refusal.delta", "delta": "I can"},
                             {"type": "response.refusal.delta", "delta": "'t."},
                             {"type": "response.completed", "response": body(None, output=refusal)}])
    else:
        response = plain(body(None, output=refusal))
    with pytest.raises(RefusalError, match=re.escape("the model refused: I can't.")) as caught:
        endpoint.parse(request_for(endpoint), response)
    assert caught.value.code == "refusal" and not is_retryable(caught.value)


@pytest.mark.parametrize(("answer", "problem"), [
    ([body()], "not a response object"),
    (body(status=None), "status is missing"),
    (body(output="Hello"), "output is not a list of items"),
    (body(usage={"input_tokens": -1}), "usage.input_tokens is -1"),
    (body(usage={"input_tokens_details": []}), "usage.input_tokens_details is a list"),
    (body(incomplete_details={"reason": 3}), "column 'incomplete_reason': an int is not a string"),
])
def test_malformed_answers_are_invalid(tmp_path: Path, answer: Any, problem: str) -> None:
    endpoint = make(tmp_path, {"prompt": "p"})
    with pytest.raises(InvalidResponseError, match=re.escape(problem)):
        endpoint.parse(request_for(endpoint), plain(answer))


# ---- structured outputs

TICKET_FORMAT = {"type": "json_schema", "name": "ticket", "strict": True, "schema": {
    "type": "object", "additionalProperties": False, "required": ["label", "urgency"],
    "properties": {"label": {"type": "string", "enum": ["bug", "question"]}, "urgency": {"type": "integer"}}}}


def test_a_json_schema_format_gives_typed_columns(tmp_path: Path) -> None:
    endpoint = make(tmp_path, {"prompt": "p"}, {"text": {"format": TICKET_FORMAT}})
    assert [f.name for f in endpoint.result_fields()][-2:] == ["label", "urgency"]
    text = '{"label": "bug", "urgency": 2}'
    (result,) = endpoint.parse(request_for(endpoint), plain(body(text)))
    assert (result["label"], result["urgency"], result["output_text"]) == ("bug", 2, text)
    with pytest.raises(SchemaMismatchError, match="does not match the output schema 'ticket'") as caught:
        endpoint.parse(request_for(endpoint), plain(body('{"label": "praise", "urgency": 2}')))
    assert caught.value.detail == '{"label": "praise", "urgency": 2}'


def test_an_incomplete_structured_answer_keeps_its_text_and_null_columns(tmp_path: Path) -> None:
    endpoint = make(tmp_path, {"prompt": "p"}, {"text": {"format": TICKET_FORMAT}, "max_output_tokens": 5})
    answer = body('{"label": "bu', "incomplete", incomplete_details={"reason": "max_output_tokens"})
    (result,) = endpoint.parse(request_for(endpoint), plain(answer))
    assert (result["output_text"], result["label"], result["urgency"]) == ('{"label": "bu', None, None)


def test_a_schema_property_named_like_a_column_is_refused(tmp_path: Path) -> None:
    clash = {**TICKET_FORMAT, "schema": {"type": "object", "properties": {"status": {"type": "string"}}}}
    with pytest.raises(SpecError, match="clashes with the built-in column 'status'"):
        make(tmp_path, {"prompt": "p"}, {"text": {"format": clash}})


def test_a_text_format_that_is_not_a_schema_adds_no_columns(tmp_path: Path) -> None:
    endpoint = make(tmp_path, {"prompt": "p"}, {"text": {"format": {"type": "json_object"}}})
    assert [f.name for f in endpoint.result_fields()][-1] == "ttft_ms"


def test_request_items_are_one_row_each(tmp_path: Path) -> None:
    endpoint = make(tmp_path, {"prompt": "p"})
    items = [Item(Row(f"r{i}", {"p": "x"}, i), "x") for i in range(3)]
    assert [len(batch) for batch in endpoint.group(items)] == [1, 1, 1]
