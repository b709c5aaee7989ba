"""The generated answers of chat and legacy completions (no HTTP here)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from pipeline.emulator import filters
from pipeline.emulator.content import fit_to_tokens, generated_text, json_answer, seed_of, value_for_schema
from pipeline.tokens import estimate_messages_tokens, estimate_text_tokens


@dataclass(frozen=True)
class Answer:
    text: str | None
    finish_reason: str
    tool_calls: list[dict[str, Any]] | None = None
    filtered: bool = False  # cut by the output content filter

    @property
    def tokens(self) -> int:
        count = estimate_text_tokens(self.text) if self.text else 0
        for call in self.tool_calls or []:
            count += estimate_text_tokens(call["function"]["arguments"])
        return count


def message_texts(messages: Any) -> list[str]:
    """The text of every message: string contents and text parts."""
    texts: list[str] = []
    for message in messages if isinstance(messages, list) else []:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, str):
            texts.append(content)
        elif isinstance(content, list):
            texts.extend(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return texts


def budget(body: dict[str, Any]) -> int | None:
    """The answer's token cap if the request set one."""
    value = body.get("max_completion_tokens", body.get("max_tokens"))
    return value if isinstance(value, int) else None


def chat_answer(body: dict[str, Any], index: int, blocked_word: str) -> Answer:
    """Choice `index` of a chat completion: text, JSON, or a forced tool call."""
    seed = seed_of("chat", json.dumps(body.get("messages"), sort_keys=True), str(index), str(body.get("seed", "")))
    tool = forced_tool(body)
    if tool is not None:
        return _tool_answer(tool, seed, named=isinstance(body.get("tool_choice"), dict))
    response_format = body.get("response_format") or {}
    if response_format.get("type") in ("json_object", "json_schema"):
        text, reason = fit_to_tokens(json_answer(seed, response_format), budget(body))
    else:
        text, reason = generated_text(seed, budget(body))
    return _maybe_filtered(Answer(text, reason), message_texts(body.get("messages")), blocked_word)


def completion_answer(body: dict[str, Any], prompt: Any, index: int, blocked_word: str) -> Answer:
    """One legacy completion: continues `prompt`; max_tokens defaults to 16 as the service's does."""
    seed = seed_of("completion", json.dumps(prompt), str(index), str(body.get("seed", "")))
    limit = body.get("max_tokens")
    natural, _ = generated_text(seed, None)
    text, reason = fit_to_tokens(" " + natural, limit if isinstance(limit, int) else 16)
    if body.get("echo") and isinstance(prompt, str):
        text = prompt + text
    return _maybe_filtered(Answer(text, reason), [prompt] if isinstance(prompt, str) else [], blocked_word)


def _maybe_filtered(answer: Answer, prompts: list[str], blocked_word: str) -> Answer:
    """A prompt asking for blocked output gets the answer cut short, as Azure's output filter does."""
    if not blocked_word or not any(blocked_word in p for p in prompts) or answer.text is None:
        return answer
    words = answer.text.split(" ")
    return Answer(" ".join(words[: len(words) // 2]), "content_filter", filtered=True)


def forced_tool(body: dict[str, Any]) -> dict[str, Any] | None:
    """The function a request forces (tool_choice "required" or a named function), if any."""
    tools = [t for t in body.get("tools") or [] if isinstance(t, dict) and t.get("type") == "function"]
    choice = body.get("tool_choice")
    if not tools or choice in (None, "none", "auto"):
        return None
    if isinstance(choice, dict):
        name = (choice.get("function") or {}).get("name")
        return next((t for t in tools if (t.get("function") or {}).get("name") == name), None)
    return tools[0]


def _tool_answer(tool: dict[str, Any], seed: int, named: bool) -> Answer:
    function = tool.get("function") or {}
    arguments = value_for_schema(function.get("parameters") or {"type": "object"}, seed)
    call = {
        "id": "call_" + format(seed, "016x") + format(seed >> 3, "08x"),
        "type": "function",
        "function": {"name": function.get("name", ""), "arguments": json.dumps(arguments)},
    }
    # The service reports "stop" when a named function was forced, "tool_calls" otherwise.
    return Answer(None, "stop" if named else "tool_calls", tool_calls=[call])


def filter_results(answer: Answer) -> dict[str, Any]:
    """Azure's per-choice annotations: cut answers show the category that cut them."""
    return filters.output_blocked_results() if answer.filtered else filters.choice_results()


def chat_usage(body: dict[str, Any], choices: list[Answer]) -> dict[str, Any]:
    """The `usage` object: prompt estimate as charged, completion tokens as generated."""
    prompt = estimate_messages_tokens(body["messages"])
    completion = sum(a.tokens for a in choices)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }
