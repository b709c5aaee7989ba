"""The generated answers of chat, legacy completions and responses (no HTTP here)."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any

from pipeline.emulator import filters
from pipeline.emulator.content import fit_to_tokens, generated_text, json_text, seed_of, text_format, value_for_schema
from pipeline.emulator.reasoning import reasoning_tokens
from pipeline.tokens import estimate_messages_tokens, estimate_text_tokens

REFUSAL = "I'm sorry, I can't help with that."
JSON_FORMATS = ("json_object", "json_schema")


@dataclass(frozen=True)
class Answer:
    text: str | None
    finish_reason: str
    tool_calls: list[dict[str, Any]] | None = None
    filtered: bool = False  # cut by the output content filter
    refusal: str | None = None  # the model declined (`refusal` fault): no text
    reasoning_tokens: int = 0  # thought before answering, counted in the completion tokens

    @property
    def tokens(self) -> int:
        """Completion (output) tokens: what was said and the reasoning before it."""
        count = estimate_text_tokens(self.text) if self.text else 0
        if self.refusal:
            count += estimate_text_tokens(self.refusal)
        for call in self.tool_calls or []:
            count += estimate_text_tokens(call["function"]["arguments"])
        return count + self.reasoning_tokens


@dataclass(frozen=True)
class Ask:
    """What one answer is made from, read from either API's body."""

    seed: int
    fmt: dict[str, Any]  # the text format, flat: {"type": "text" | "json_object" | "json_schema", "schema": ...}
    budget: int | None  # the tokens it may take, reasoning included (None: no cap)
    reasoning: int  # the tokens its reasoning takes
    prompts: list[str]  # the prompt's texts, where the output filter word is looked for
    fault: str | None = None  # an answer fault of the content: badjson, schema, refusal


def generate(ask: Ask, blocked_word: str) -> Answer:
    """One answer in the format asked, after its reasoning, within its budget."""
    if ask.budget is not None and ask.budget <= ask.reasoning:
        # Reasoning spent the whole budget, as it can on the service: an empty answer cut for length.
        return Answer("", "length", reasoning_tokens=ask.budget)
    visible = None if ask.budget is None else ask.budget - ask.reasoning
    if ask.fault == "refusal":
        return Answer(None, "stop", refusal=REFUSAL, reasoning_tokens=ask.reasoning)
    if ask.fmt.get("type") in JSON_FORMATS:
        text, reason = fit_to_tokens(json_text(ask.seed, ask.fmt, ask.fault), visible)
    else:
        text, reason = generated_text(ask.seed, visible)
    return _maybe_filtered(Answer(text, reason, reasoning_tokens=ask.reasoning), ask.prompts, blocked_word)


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


def conversation_key(messages: Any) -> str:
    """The text an answer's seed is taken from: the chat messages (Responses: its input as messages)."""
    return json.dumps(messages, sort_keys=True)


def answer_seed(conversation: str, index: int = 0, seed: Any = None) -> int:
    """The seed of one answer: the same conversation gets the same answer from chat and Responses alike."""
    return seed_of("chat", conversation, str(index), str(seed if seed is not None else ""))


def chat_answer(body: dict[str, Any], index: int, blocked_word: str, model: str = "",
                fault: str | None = None) -> Answer:
    """Choice `index` of a chat completion: text, JSON, or a forced tool call; `model` decides whether it
    reasons first (reasoning.py), `fault` is an answer fault of its content."""
    messages = conversation_key(body.get("messages"))
    seed = answer_seed(messages, index, body.get("seed"))
    thought = reasoning_tokens(model, body.get("reasoning_effort"), seed_of("reasoning", messages, str(index)))
    tool = forced_tool(body)
    if tool is not None:
        answer = _tool_answer(tool, seed, named=isinstance(body.get("tool_choice"), dict))
        return dataclasses.replace(answer, reasoning_tokens=thought)
    fmt = text_format(body.get("response_format") or {})
    return generate(Ask(seed, fmt, budget(body), thought, message_texts(body.get("messages")), fault), blocked_word)


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
    return dataclasses.replace(answer, text=" ".join(words[: len(words) // 2]), finish_reason="content_filter",
                               filtered=True)


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


def chat_usage(body: dict[str, Any], choices: list[Answer], cached: int = 0) -> dict[str, Any]:
    """The `usage` object: prompt estimate as charged (`cached` of it from the prompt cache), completion
    tokens as generated, reasoning included."""
    prompt = estimate_messages_tokens(body["messages"])
    completion = sum(a.tokens for a in choices)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cached, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": sum(a.reasoning_tokens for a in choices),
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }
