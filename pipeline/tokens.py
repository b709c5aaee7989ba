"""Token estimates that need no network and no tokenizer.

Azure charges a request against TPM at arrival from an estimate "partly from
character count"; the emulator uses the same function for its quota and its
`usage` figures, so the client's pacing and the emulator's counting agree.
The estimate errs high (about 1 token per 4 characters, never below the word
count) so pacing stays under a real quota.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable

_WORDISH = re.compile(r"\w+|[^\w\s]")


def estimate_text_tokens(text: str) -> int:
    """Tokens for one string: max(chars/4, words+punctuation), at least 1."""
    if not text:
        return 1
    by_chars = math.ceil(len(text) / 4)
    by_words = len(_WORDISH.findall(text))
    return max(1, by_chars, by_words)


def estimate_messages_tokens(messages: Iterable[dict]) -> int:
    """Chat prompt tokens: content plus a few tokens of framing per message."""
    total = 3  # reply priming
    for message in messages:
        total += 4
        content = message.get("content")
        if isinstance(content, str):
            total += estimate_text_tokens(content)
        elif isinstance(content, list):
            for part in content:
                if isinstance(part, dict) and part.get("type") == "text":
                    total += estimate_text_tokens(str(part.get("text", "")))
                else:
                    total += 85  # an image part at low detail
    return total
