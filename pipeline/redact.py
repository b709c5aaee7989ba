"""Secrets never leave the process: every text we write or log passes through `redact`."""

from __future__ import annotations

import logging
import re

_SECRETS: set[str] = set()
_HEADER_VALUES = re.compile(
    r"(?i)(api-key|authorization|ocp-apim-subscription-key)(['\"]?\s*[:=]\s*['\"]?)(?!\*\*\*)"  # masked once only
    r"([^'\",\s}]+(?: [^'\",\s}]+)?)"
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
    """Formats the record, then masks what it holds (its traceback too)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        record.msg, record.args = redact(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


_FILTER = RedactingFilter()


def get_logger(name: str) -> logging.Logger:
    """A logger of ours whose records are masked before any handler sees them: a library caller's own
    handlers (a notebook, Airflow) get masked text too, not only the CLI's. (A logger's filters do not
    apply to its children's records, so each logger of ours gets the filter itself.)"""
    logger = logging.getLogger(name)
    if _FILTER not in logger.filters:
        logger.addFilter(_FILTER)
    return logger
