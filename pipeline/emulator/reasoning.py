"""Reasoning models: which deployments think before they answer, and how many tokens that takes.

A deployment (or model) named like o1, o3, o4 or gpt-5 (not gpt-5-chat, which does not reason) reports
`reasoning_tokens`, counted in its completion (output) tokens and taken from the same budget
(max_completion_tokens, max_output_tokens): a small budget can be spent on reasoning alone, leaving an empty
answer cut for length, as the service does. The count is deterministic from the input, in the 64-token
blocks the service reports, and scales with the effort asked (`reasoning_effort`, `reasoning.effort`).
"""

from __future__ import annotations

REASONING_PREFIXES = ("o1", "o3", "o4", "gpt-5")
NOT_REASONING_PREFIXES = ("gpt-5-chat",)
DEFAULT_EFFORT = "medium"
# How much thinking each effort takes, relative to medium ("none": the gpt-5.1 family's no-reasoning mode).
EFFORT_SCALE = {"none": 0.0, "minimal": 0.25, "low": 0.5, "medium": 1.0, "high": 2.0, "xhigh": 3.0}
EFFORTS = tuple(EFFORT_SCALE)
BLOCK_TOKENS = 64


def is_reasoning_model(name: str) -> bool:
    lowered = name.lower()
    return lowered.startswith(REASONING_PREFIXES) and not lowered.startswith(NOT_REASONING_PREFIXES)


def reasoning_tokens(name: str, effort: str | None, seed: int) -> int:
    """What answering takes in thought: 128 to 448 tokens at medium effort (0 for other models)."""
    if not is_reasoning_model(name):
        return 0
    scale = EFFORT_SCALE.get(effort or DEFAULT_EFFORT, 1.0)
    if scale == 0:
        return 0
    blocks = 2 + seed % 6
    return max(1, round(blocks * scale)) * BLOCK_TOKENS
