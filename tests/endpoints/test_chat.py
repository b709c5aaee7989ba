"""Chat endpoint: message building, templates, token estimates, stream assembly; no server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.endpoints.base import HttpResponse, Item, RowError
from pipeline.endpoints.chat import DEFAULT_COMPLETION_TOKENS, Chat, assemble_stream
from pipeline.endpoints.files import FileFacts, FileNeed
from pipeline.errors import InvalidResponseError
from pipeline.sources.base import Row
from pipeline.sources.files import RowFiles
from pipeline.spec import parse_spec


def make(tmp_path: Path, inputs: dict, params: dict | None = None) -> Chat:
    raw = {"name": "c", "endpoint": "chat", "input": {"path": str(tmp_path), **inputs}, "params": params or {}}
    return Chat(parse_spec(raw, tmp_path / "job.toml", env={}))


def test_template_and_system(tmp_path: Path) -> None:
    chat = make(tmp_path, {"template": "Q: {question}", "system": "Be brief."}, {"max_tokens": 50})
    item = chat.prepare(Row("a", {"question": "why?"}, 1))
    assert item.payload == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Q: why?"}]
    assert 50 < item.tokens < 80
    request = chat.build([item])
    assert request.json == {"max_tokens": 50, "messages": item.payload}
    assert request.accept == "json"


def test_missing_template_column_is_a_row_error(tmp_path: Path) -> None:
    chat = make(tmp_path, {"template": "Q: {question}"})
    with pytest.raises(RowError, match="template needs column 'question'"):
        chat.prepare(Row("a", {}, 4))


def test_messages_column_checked(tmp_path: Path) -> None:
    chat = make(tmp_path, {"messages": "messages"})
    item = chat.prepare(Row("a", {"messages": [{"role": "user", "content": "hi"}]}, 1))
    assert item.tokens > DEFAULT_COMPLETION_TOKENS
    with pytest.raises(RowError, match="needs a role"):
        chat.prepare(Row("b", {"messages": [{"who": "me"}]}, 2))


def test_stream_sets_include_usage(tmp_path: Path) -> None:
    chat = make(tmp_path, {"prompt": "p"}, {"stream": True})
    request = chat.build([chat.prepare(Row("a", {"p": "hello"}, 1))])
    assert request.accept == "sse"
    assert request.json["stream_options"] == {"include_usage": True}


def test_assemble_stream() -> None:
    events = [
        {"choices": [], "prompt_filter_results": []},
        {"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]},
        {"choices": [{"index": 0, "delta": {"content": "Hel"}}]},
        {"choices": [{"index": 0, "delta": {"content": "lo"}}]},
        {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
        {"choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 2}},
    ]
    data = assemble_stream(events)
    assert data["choices"][0]["message"]["content"] == "Hello"
    assert data["choices"][0]["finish_reason"] == "stop"
    assert data["usage"]["completion_tokens"] == 2


def test_parse_flags_content_filter(tmp_path: Path) -> None:
    chat = make(tmp_path, {"prompt": "p"})
    request = chat.build([chat.prepare(Row("a", {"p": "hello"}, 1))])
    body = {"choices": [{"index": 0, "finish_reason": "content_filter", "message": {"content": ""},
                         "content_filter_results": {"hate": {"filtered": True, "severity": "high"},
                                                    "violence": {"filtered": False, "severity": "safe"}}}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 0}}
    (result,) = chat.parse(request, HttpResponse(200, {}, json.dumps(body).encode(), 0.1))
    assert result["content_filtered"] is True
    assert result["filter_categories"] == "hate"


def prepared(chat: Chat, row: Row) -> Item:
    """prepare() after the source side has read the files the row needs, as on the run's reader thread."""
    return chat.prepare(RowFiles().attach(row, chat.needs(row)))


def test_vision_image_from_facts_alone_no_disk(tmp_path: Path) -> None:
    chat = make(tmp_path, {"prompt": "q", "image": "img"})
    row = Row("a", {"q": "?", "img": "/nowhere/cat.png"}, 1)
    assert chat.needs(row) == [FileNeed("img", "/nowhere/cat.png", whole=True)]
    read = Row("a", row.fields, 1, files={"img": FileFacts("cat.png", "/nowhere/cat.png", 4, data=b"\x89PNG")})
    assert chat.prepare(read).payload[0]["content"][1]["image_url"]["url"] == "data:image/png;base64,iVBORw=="
    assert chat.needs(Row("b", {"q": "?", "img": "https://example.org/x.jpg"}, 2)) == []


def test_vision_image_column_becomes_data_url(tmp_path: Path) -> None:
    (tmp_path / "cat.png").write_bytes(b"\x89PNG\r\n\x1a\nfake")
    chat = make(tmp_path, {"prompt": "q", "image": "img"})
    item = prepared(chat, Row("a", {"q": "What is this?", "img": str(tmp_path / "cat.png")}, 1))
    text, image = item.payload[0]["content"]
    assert text == {"type": "text", "text": "What is this?"}
    assert image["image_url"]["url"].startswith("data:image/png;base64,iVBORw0KGg")
    remote = prepared(chat, Row("b", {"q": "And this?", "img": "https://example.org/x.jpg"}, 2))
    assert remote.payload[0]["content"][1]["image_url"]["url"] == "https://example.org/x.jpg"
    with pytest.raises(RowError, match="cannot read image"):
        prepared(chat, Row("c", {"q": "?", "img": "missing.png"}, 3))


def test_parse_joins_content_parts_of_every_choice(tmp_path: Path) -> None:
    chat = make(tmp_path, {"prompt": "p"}, {"n": 2})
    request = chat.build([chat.prepare(Row("a", {"p": "hello"}, 1))])
    parts = [{"type": "text", "text": "Hel"}, {"type": "text", "text": "lo"}]
    body = {"choices": [{"index": 0, "finish_reason": "stop", "message": {"content": parts}},
                        {"index": 1, "finish_reason": "stop", "message": {"content": "Hi", "refusal": None}}]}
    (result,) = chat.parse(request, HttpResponse(200, {}, json.dumps(body).encode(), 0.1))
    assert (result["content"], result["choices"]) == ("Hello", ["Hello", "Hi"])
    assert result["prompt_tokens"] is None  # no usage in the answer: allowed, left null


@pytest.mark.parametrize("choice", [3, {"message": "text"}, {"message": {"content": {"a": 1}}}])
def test_parse_refuses_malformed_choices(tmp_path: Path, choice: object) -> None:
    chat = make(tmp_path, {"prompt": "p"})
    request = chat.build([chat.prepare(Row("a", {"p": "hello"}, 1))])
    with pytest.raises(InvalidResponseError):
        chat.parse(request, HttpResponse(200, {}, json.dumps({"choices": [choice]}).encode(), 0.1))
