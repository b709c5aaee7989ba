"""Logging: text or JSON lines on stderr, every record passed through the redactor."""

from __future__ import annotations

import json
import logging
import os
import sys

from pipeline.redact import RedactingFilter


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {"time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"), "level": record.levelname.lower(),
                 "logger": record.name, "message": record.getMessage()}
        return json.dumps(entry, ensure_ascii=False)


def configure_logging(level: str | None = None, fmt: str = "text") -> None:
    level_name = (level or os.environ.get("PIPELINE_LOG_LEVEL") or "warning").upper()
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RedactingFilter())
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger("pipeline")
    root.handlers[:] = [handler]
    root.setLevel(getattr(logging, level_name, logging.WARNING))
    root.propagate = False
