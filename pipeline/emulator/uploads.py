"""Reading multipart/form-data uploads (audio) with the service's size limit."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import BodyPartReader, web

from pipeline.emulator.bodies import openai_error
from pipeline.emulator.exchange import Rejection, invalid

_CHUNK = 256 * 1024


@dataclass
class Form:
    fields: dict[str, Any] = field(default_factory=dict)
    file: bytes | None = None
    filename: str | None = None


async def read_form(request: web.Request, max_file_bytes: int,
                    on_file: Callable[[int], None] = lambda size: None) -> Form:
    """Fields as strings (repeated `name[]` fields as lists) and the `file` part's bytes.

    A file over the limit is read to the end before the 413 is sent: answering
    while the client is still uploading would look like a reset connection.
    `on_file` is told the file part's size once it is read, kept or not (for stats).
    """
    if not request.content_type.startswith("multipart/"):
        raise invalid("Invalid Content-Type header (expected multipart/form-data).")
    form = Form()
    oversize = 0
    reader = await request.multipart()
    async for part in reader:
        if not isinstance(part, BodyPartReader) or part.name is None:
            continue
        if part.name == "file":
            form.filename = part.filename
            form.file, oversize = await _read_limited(part, max_file_bytes)
            on_file(oversize or len(form.file or b""))
        else:
            _add_field(form, part.name, await part.text())
    if oversize:
        message = f"Maximum content size limit ({max_file_bytes}) exceeded ({oversize} bytes read)"
        raise Rejection(413, openai_error(message, type_="server_error"))
    return form


async def _read_limited(part: BodyPartReader, limit: int) -> tuple[bytes | None, int]:
    """The part's bytes, or (None, size) once it proves bigger than `limit`."""
    chunks: list[bytes] = []
    size = 0
    while chunk := await part.read_chunk(_CHUNK):
        size += len(chunk)
        if size <= limit:
            chunks.append(chunk)
        else:
            chunks.clear()  # keep reading to drain the upload, keep nothing
    return (None, size) if size > limit else (b"".join(chunks), 0)


def _add_field(form: Form, name: str, value: str) -> None:
    if name.endswith("[]"):
        form.fields.setdefault(name[:-2], []).append(value)
    else:
        form.fields[name] = value
