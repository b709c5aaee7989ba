"""Secrets never leave the process: every text we write or log passes through `redact`."""

from __future__ import annotations

import logging
import re

_SECRETS: set[str] = set()
_HEADER_VALUES = re.compile(
    r"(?i)(api-key|authorization|ocp-apim-subscription-key)(['\"]?\s*[:=]\s*['\"]?)([^'\",\s}]+(?: [^'\",\s}]+)?)"
)
MASK = "***"


def register_secret(value: str | None) -> None:
    """Remember a key or token so that any text holding it is masked."""
    if value and len(value) >= 4:
        _SECRETS.add(value)


def redact(text: str) -> str:
    """Mask registered secrets and the values of auth headers in free text."""
    if not text:
        return text
    for secret in _SECRETS:
        if secret in text:
            text = text.replace(secret, MASK)
    return _HEADER_VALUES.sub(lambda m: m.group(1) + m.group(2) + MASK, text)


class RedactingFilter(logging.Filter):
    """Applied to every handler: formats the record, then masks what it holds."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        record.msg, record.args = redact(message), None
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True
