"""POST completions: the legacy `text_completion` API (JSON or server-sent events)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from pipeline.emulator import filters
from pipeline.emulator.charges import completions_charge, input_items, item_tokens
from pipeline.emulator.exchange import Exchange, Operation, invalid
from pipeline.emulator.fault_answers import answer_fault, spoil_usage
from pipeline.emulator.ops import sse
from pipeline.emulator.ops.answers import Answer, completion_answer
from pipeline.emulator.ops.common import created, int_field, json_answer, new_id, pace_tokens, require


def validate(x: Exchange) -> None:
    prompt = require(x, "prompt")
    if not input_items(prompt) or prompt == "":
        raise invalid("'$.prompt' is invalid. Please check the API reference.", "prompt")
    int_field(x, "n", 1, 1, 128)
    int_field(x, "max_tokens", 16, 0)
    if x.body.get("stream_options") is not None and not x.body.get("stream"):
        raise invalid("The 'stream_options' parameter is only allowed when 'stream' is enabled.", "stream_options")


def texts(x: Exchange) -> list[str]:
    return [p for p in input_items(x.body.get("prompt")) if isinstance(p, str)]


def answers(x: Exchange) -> list[Answer]:
    """Choices for every prompt, n per prompt, indexed prompt-major as the service does."""
    n = x.body.get("n") or 1
    word = x.config.output_filter_word
    return [completion_answer(x.body, p, i, word) for p in input_items(x.body["prompt"]) for i in range(n)]


def usage(x: Exchange, choices: list[Answer]) -> dict[str, int]:
    prompt = sum(item_tokens(p) for p in input_items(x.body["prompt"]))
    completion = sum(a.tokens for a in choices)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


async def respond(x: Exchange) -> web.StreamResponse:
    choices = answers(x)
    fault = answer_fault(x)
    if x.body.get("stream"):
        return await _stream(x, choices, fault)
    await pace_tokens(x, sum(a.tokens for a in choices))
    body: dict[str, Any] = {
        "id": new_id("cmpl-"),
        "object": "text_completion",
        "created": created(),
        "model": x.model,
        "choices": [_choice(x, i, a.text or "", a) for i, a in enumerate(choices)],
        "usage": spoil_usage(usage(x, choices), fault),
    }
    if x.azure:
        body["prompt_filter_results"] = filters.prompt_filter_results(len(input_items(x.body["prompt"])))
    return json_answer(body)


def _choice(x: Exchange, index: int, text: str, answer: Answer | None) -> dict[str, Any]:
    choice: dict[str, Any] = {
        "text": text,
        "index": index,
        "logprobs": None,
        "finish_reason": answer.finish_reason if answer else None,
    }
    if x.azure:
        blocked = answer is not None and answer.filtered
        choice["content_filter_results"] = filters.output_blocked_results() if blocked else filters.choice_results()
    return choice


async def _stream(x: Exchange, choices: list[Answer], fault: str | None) -> web.StreamResponse:
    """Text chunks per choice, then one with its finish_reason (left null by the `nofinish` fault)."""
    response = await sse.open_stream(x)
    base = {"id": new_id("cmpl-"), "object": "text_completion", "created": created(), "model": x.model}
    extra = {"usage": None} if sse.wants_usage(x) else {}
    if x.azure:
        prompts = len(input_items(x.body["prompt"]))
        await sse.send(
            response,
            {
                "choices": [],
                "created": 0,
                "id": "",
                "model": "",
                "object": "",
                "prompt_filter_results": filters.prompt_filter_results(prompts),
            },
        )
    for index, answer in enumerate(choices):
        words = (answer.text or "").split(" ")
        for position, word in enumerate(words):
            await sse.pause(x)
            piece = word if position == 0 else " " + word
            await sse.send(response, dict(base, choices=[_choice(x, index, piece, None)], **extra))
        await sse.send(response, dict(base, choices=[_choice(x, index, "", None if fault == "nofinish" else answer)],
                                      **extra))
    if extra:
        await sse.send(response, dict(base, choices=[], usage=spoil_usage(usage(x, choices), fault)))
    return await sse.finish(x, response)


COMPLETIONS = Operation(
    path="completions",
    azure_name="Completions_Create",
    respond=respond,
    validate=validate,
    texts=texts,
    charge=completions_charge,
    filter_style="prompt",
)
