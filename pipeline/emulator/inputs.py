"""A Responses API body's `instructions` and `input` as chat-style messages.

Token estimates, fault markers, filter words, prompts and the prompt cache read these just as they read a
chat body's `messages`, so the two APIs count one conversation alike. Text parts (input_text, and the
output_text of earlier assistant turns) become chat text parts; other parts (images, files) stay as they
are, estimated as chat estimates an image part; items that are no message (function call outputs,
reasoning items of earlier turns) count as the text of their JSON.
"""

from __future__ import annotations

import json
from typing import Any

TEXT_PARTS = ("input_text", "output_text")


def response_messages(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The instructions (as a developer message) and the input, as chat messages."""
    messages: list[dict[str, Any]] = []
    instructions = body.get("instructions")
    if isinstance(instructions, str) and instructions:
        messages.append({"role": "developer", "content": instructions})
    value = body.get("input")
    if isinstance(value, str):
        messages.append({"role": "user", "content": value})
    elif isinstance(value, list):
        messages.extend(_message(item) for item in value)
    return messages


def _message(item: Any) -> dict[str, Any]:
    if not isinstance(item, dict) or "role" not in item:
        return {"role": "user", "content": json.dumps(item)}
    content = item.get("content")
    if isinstance(content, list):
        return {"role": item["role"], "content": [_part(part) for part in content]}
    return {"role": item["role"], "content": content if isinstance(content, str) else ""}


def _part(part: Any) -> Any:
    if not isinstance(part, dict):
        return {"type": "text", "text": str(part)}
    if part.get("type") in TEXT_PARTS:
        return {"type": "text", "text": str(part.get("text", ""))}
    if part.get("type") == "refusal":
        return {"type": "text", "text": str(part.get("refusal", ""))}
    return part
