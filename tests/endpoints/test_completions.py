"""Legacy completions endpoint: prompts, token estimates (as the emulator charges), parsing, streams."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.emulator.charges import charge_tokens
from pipeline.endpoints.base import HttpResponse, RowError
from pipeline.endpoints.completions import DEFAULT_MAX_TOKENS, Completions, assemble_stream
from pipeline.errors import InvalidResponseError
from pipeline.sources.base import Row
from pipeline.spec import parse_spec


def make(tmp_path: Path, inputs: dict | None = None, params: dict | None = None) -> Completions:
    raw = {"name": "c", "endpoint": "completions", "input": {"path": str(tmp_path), **(inputs or {"prompt": "p"})},
           "params": params or {}}
    return Completions(parse_spec(raw, tmp_path / "job.toml", env={}))


def answer(body: dict) -> HttpResponse:
    return HttpResponse(200, {}, json.dumps(body).encode(), 0.1)


@pytest.mark.parametrize("params", [{}, {"max_tokens": 100}, {"max_tokens": 20, "n": 3}])
def test_token_estimate_matches_emulator_charge(tmp_path: Path, params: dict) -> None:
    completions = make(tmp_path, params=params)
    request = completions.build([completions.prepare(Row("a", {"p": "def add(a, b):\n    \"\"\"Add"}, 1))])
    assert request.tokens == charge_tokens("completions", request.json or {})
    assert request.json == {**params, "prompt": "def add(a, b):\n    \"\"\"Add"}
    if not params:
        assert request.tokens > DEFAULT_MAX_TOKENS


def test_template_prompt(tmp_path: Path) -> None:
    completions = make(tmp_path, {"template": "Q: {q}\nA:"})
    assert completions.prepare(Row("a", {"q": "why?"}, 1)).payload == "Q: why?\nA:"
    with pytest.raises(RowError, match="template needs column 'q'"):
        completions.prepare(Row("b", {}, 2))


def test_parse_with_filters_and_choices(tmp_path: Path) -> None:
    completions = make(tmp_path, params={"n": 2})
    body = {"choices": [
        {"index": 1, "text": " second", "finish_reason": "stop"},
        {"index": 0, "text": "", "finish_reason": "content_filter",
         "content_filter_results": {"violence": {"filtered": True, "severity": "medium"}}}],
        "usage": {"prompt_tokens": 4, "completion_tokens": 1}}
    (result,) = completions.parse(completions.build([completions.prepare(Row("a", {"p": "x"}, 1))]), answer(body))
    assert result == {"text": "", "finish_reason": "content_filter", "prompt_tokens": 4, "completion_tokens": 1,
                      "content_filtered": True, "filter_categories": "violence", "choices": ["", " second"]}
    assert [f.name for f in completions.result_fields()][-1] == "choices"


def test_parse_refuses_answer_without_choices(tmp_path: Path) -> None:
    completions = make(tmp_path)
    with pytest.raises(InvalidResponseError):
        completions.parse(completions.build([completions.prepare(Row("a", {"p": "x"}, 1))]), answer({"choices": []}))


def test_stream_assembly(tmp_path: Path) -> None:
    completions = make(tmp_path, params={"stream": True})
    request = completions.build([completions.prepare(Row("a", {"p": "x"}, 1))])
    assert request.accept == "sse" and request.json and request.json["stream_options"] == {"include_usage": True}
    events: list[dict] = [{"choices": [], "prompt_filter_results": []},
              {"choices": [{"index": 0, "text": "Hel", "finish_reason": None}]},
              {"choices": [{"index": 0, "text": "lo", "finish_reason": None}]},
              {"choices": [{"index": 0, "text": "", "finish_reason": "length"}]},
              {"choices": [], "usage": {"prompt_tokens": 1, "completion_tokens": 2}}]
    assert assemble_stream(events)["choices"][0] == {"index": 0, "text": "Hello", "finish_reason": "length",
                                                     "content_filter_results": None}
    response = HttpResponse(200, {}, b"", 0.1, events=events)
    (result,) = completions.parse(request, response)
    assert (result["text"], result["completion_tokens"]) == ("Hello", 2)
