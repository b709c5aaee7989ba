"""Deterministic English-ish prose, seeded from hashes, cut to a token budget."""

from __future__ import annotations

import hashlib
import random

from pipeline.tokens import estimate_text_tokens

_WORD_TEXT = (
    "the a of and to in is that it for on with as was by this be are from at or an "
    "which have not but they all were one their has more when there can been would "
    "data model system value report river market garden signal memory bridge window "
    "morning pattern result process energy season number history method language "
    "simple clear quiet rapid careful bright gentle steady early final useful open "
    "build measure follow explain compare gather return observe design improve carry "
    "often always later nearly rather quite today together perhaps instead"
)
WORDS = _WORD_TEXT.split()


def seed_of(*parts: str | bytes) -> int:
    """A 64-bit seed from the hash of the parts (stable across runs and machines)."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode() if isinstance(part, str) else part)
        digest.update(b"\x00")
    return int.from_bytes(digest.digest()[:8], "little")


def words_for(seed: int, count: int) -> list[str]:
    """`count` words of English-ish prose, capitalised into sentences."""
    rng = random.Random(seed)
    words: list[str] = []
    sentence_left = 0
    for _ in range(count):
        word = rng.choice(WORDS)
        if sentence_left == 0:
            word = word.capitalize()
            sentence_left = rng.randint(6, 14)
        sentence_left -= 1
        words.append(word + ("." if sentence_left == 0 else ""))
    if words and not words[-1].endswith("."):
        words[-1] += "."
    return words


def generated_text(seed: int, max_tokens: int | None) -> tuple[str, str]:
    """A deterministic answer and its finish_reason ("stop", or "length" if cut)."""
    natural = random.Random(seed).randint(12, 80)
    return fit_to_tokens(" ".join(words_for(seed, natural)), max_tokens)


def fit_to_tokens(text: str, max_tokens: int | None) -> tuple[str, str]:
    """Cut `text` to the longest prefix within max_tokens, as the model stops mid-answer."""
    if max_tokens is None or estimate_text_tokens(text) <= max_tokens:
        return text, "stop"
    low, high = 0, len(text)  # the estimate grows with the prefix: binary search
    while low < high:
        middle = (low + high + 1) // 2
        if estimate_text_tokens(text[:middle]) <= max_tokens:
            low = middle
        else:
            high = middle - 1
    return text[:low].rstrip(), "length"
