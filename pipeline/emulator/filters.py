"""Azure's content-filter annotations (Azure routes only; OpenAI has none)."""

from __future__ import annotations

from typing import Any

Results = dict[str, Any]

_SEVERITY_CATEGORIES = ("hate", "self_harm", "sexual", "violence")


def _safe() -> dict[str, Any]:
    return {"filtered": False, "severity": "safe"}


def _undetected() -> dict[str, Any]:
    return {"filtered": False, "detected": False}


def safe_results() -> Results:
    """The four severity categories, all safe (images' content_filter_results)."""
    return {name: _safe() for name in _SEVERITY_CATEGORIES}


def choice_results() -> Results:
    """What a chat/completions choice carries when nothing was filtered."""
    results = safe_results()
    results["protected_material_code"] = _undetected()
    results["protected_material_text"] = _undetected()
    return results


def prompt_results() -> Results:
    """What a prompt carries: severities plus jailbreak detection."""
    results = safe_results()
    results["jailbreak"] = _undetected()
    return results


def prompt_filter_results(count: int = 1) -> list[dict[str, Any]]:
    """Chat/completions `prompt_filter_results`: one entry per prompt."""
    return [{"prompt_index": i, "content_filter_results": prompt_results()} for i in range(count)]


def image_prompt_results() -> Results:
    """Images carry one object per image (not a list), with profanity and jailbreak."""
    results = safe_results()
    results["profanity"] = _undetected()
    results["jailbreak"] = _undetected()
    return results


def blocked_results() -> Results:
    """Severity results with violence filtered at high severity."""
    results = safe_results()
    results["violence"] = {"filtered": True, "severity": "high"}
    return results


def blocked_with_jailbreak() -> Results:
    results = blocked_results()
    results["jailbreak"] = _undetected()
    return results


def output_blocked_results() -> Results:
    """A choice whose completion the output filter cut (finish_reason content_filter)."""
    results = choice_results()
    results["violence"] = {"filtered": True, "severity": "medium"}
    return results
