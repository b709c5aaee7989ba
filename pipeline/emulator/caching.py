"""Prompt caching as the service reports it in `cached_tokens`.

The service caches prompt prefixes of 1024 tokens and more, in steps of 128: a prompt whose first
1024 + 128k tokens it has seen before (on the same deployment) reports those as cached. The emulator
keeps a bounded set of hashes of the prefixes it has seen, oldest forgotten first. A prefix of t tokens
is the first 4t characters of the prompt's text (`prompt_text`), so it is the same whatever follows it:
rows sharing a long system prompt hit the cache from the second one on, as they do on the service.
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from collections.abc import Iterator
from typing import Any

MIN_CACHED_TOKENS = 1024
CACHE_STEP_TOKENS = 128
CHARS_PER_TOKEN = 4
PREFIXES_KEPT = 65_536


class PromptCache:
    """Hashes of the prompt prefixes seen, per deployment; `observe` answers and remembers."""

    def __init__(self, capacity: int = PREFIXES_KEPT) -> None:
        self._seen: OrderedDict[bytes, None] = OrderedDict()
        self._capacity = capacity

    def observe(self, scope: str, text: str, prompt_tokens: int) -> int:
        """The cached tokens of this prompt: its longest prefix (1024 + 128k tokens, fewer than its
        prompt_tokens) seen before in `scope`. Then every such prefix of it is remembered for later prompts."""
        keys = list(_prefix_keys(scope, text, prompt_tokens))
        cached = max((boundary for boundary, key in keys if key in self._seen), default=0)
        for _, key in keys:
            self._seen[key] = None
            self._seen.move_to_end(key)
        while len(self._seen) > self._capacity:
            self._seen.popitem(last=False)
        return cached

    def clear(self) -> None:
        self._seen.clear()


def _prefix_keys(scope: str, text: str, prompt_tokens: int) -> Iterator[tuple[int, bytes]]:
    """(boundary, hash of the prompt's first `boundary` tokens) for each boundary a cache hit may end at."""
    if prompt_tokens < MIN_CACHED_TOKENS:
        return
    digest = hashlib.sha256(scope.encode() + b"\x00")
    hashed = 0
    for boundary in range(MIN_CACHED_TOKENS, prompt_tokens, CACHE_STEP_TOKENS):
        end = boundary * CHARS_PER_TOKEN
        if end > len(text):
            return
        digest.update(text[hashed:end].encode())
        hashed = end
        yield boundary, digest.copy().digest()


def prompt_text(messages: list[dict[str, Any]], tools: Any = None) -> str:
    """A prompt as the text its prefixes are cut from: tools first (the service puts them there), then each
    message's role and content (text parts as text, other parts as their JSON)."""
    pieces = [json.dumps(tools, sort_keys=True)] if tools else []
    for message in messages:
        pieces.append(f"<|{message.get('role')}|>")
        content = message.get("content")
        if isinstance(content, list):
            pieces.extend(_part_text(part) for part in content)
        else:
            pieces.append(str(content or ""))
    return "".join(pieces)


def _part_text(part: Any) -> str:
    if isinstance(part, dict) and part.get("type") == "text":
        return str(part.get("text", ""))
    return json.dumps(part, sort_keys=True)
