"""What a row becomes for the endpoints that take a conversation (chat, responses): the messages of a
`messages` column, checked; or one user message from `prompt`/`template`, with an image when `image` names
one. The system message is each endpoint's own business (a first message for chat, `instructions` for
responses), so it is not added here.
"""

from __future__ import annotations

import base64
import mimetypes
from pathlib import Path
from typing import Any

from pipeline.endpoints.base import RowError, prompt_text
from pipeline.endpoints.files import FileNeed
from pipeline.sources.base import Row
from pipeline.spec import JobSpec

ROLES = frozenset({"system", "user", "assistant", "developer", "tool"})
REMOTE_IMAGES = ("http://", "https://", "data:")  # passed on as they are, never read


def image_needs(row: Row, spec: JobSpec) -> list[FileNeed]:
    """The image file a vision row needs read before prepare() (none for a messages column or a URL)."""
    need = image_need(row, spec.input.image, spec) if spec.input.image and not spec.input.messages else None
    return [need] if need is not None else []


def user_messages(row: Row, spec: JobSpec) -> list[dict[str, Any]]:
    """The row's conversation, in chat's shape, without the system message."""
    mapping = spec.input
    if mapping.messages:
        return _checked_messages(row, mapping.messages)
    content: Any = prompt_text(row, spec)
    if mapping.image:
        content = [{"type": "text", "text": content}, image_part(row, mapping.image, spec)]
    return [{"role": "user", "content": content}]


def _checked_messages(row: Row, column: str) -> list[dict[str, Any]]:
    value = row.fields.get(column)
    where = f"row {row.id!r} (line {row.line})"
    if not isinstance(value, list) or not value:
        raise RowError(f"{where}: '{column}' must be a non-empty list of {{role, content}} objects")
    for position, message in enumerate(value):
        if not isinstance(message, dict) or message.get("role") not in ROLES or "content" not in message:
            raise RowError(f"{where}: '{column}'[{position}] needs a role ({', '.join(sorted(ROLES))}) and content")
    return value


def image_need(row: Row, column: str, spec: Any) -> FileNeed | None:
    """The image file a vision row names, to be read whole; None for a URL (or a value image_part refuses)."""
    value = row.fields.get(column)
    if not isinstance(value, str) or not value or value.startswith(REMOTE_IMAGES):
        return None
    path = Path(value) if Path(value).is_absolute() else Path(spec.input.path).parent / value
    return FileNeed(column, str(path), whole=True)


def image_part(row: Row, column: str, spec: Any) -> dict[str, Any]:
    """A vision `image_url` part: URLs pass through, files (read by the source side) become data URLs."""
    value = row.fields.get(column)
    if not isinstance(value, str) or not value:
        raise RowError(f"row {row.id!r} (line {row.line}): '{column}' must be an image file path or URL")
    if value.startswith(REMOTE_IMAGES):
        return {"type": "image_url", "image_url": {"url": value}}
    facts = row.files.get(column)
    if facts is None or facts.data is None:
        reason = "not read" if facts is None else facts.error if facts.regular else "not a regular file"
        raise RowError(f"row {row.id!r}: cannot read image {value!r}: {reason}")
    mime = mimetypes.guess_type(facts.name)[0] or "image/png"
    return {"type": "image_url", "image_url": {"url": f"data:{mime};base64,{base64.b64encode(facts.data).decode()}"}}
