"""What an endpoint needs read and what it leaves written, as plain data: endpoints stay pure.

An endpoint names the files a row needs (a vision input's image, an audio file to upload) with
`FileNeed`s; the source side (sources/files.py) resolves and reads them, off the event loop, and hands
the row over with `FileFacts`. An answer that leaves files (images, speech audio, sidecars) says so
with `FileOutput`s; the sink side (sinks/outputs.py) fetches and writes them whole before the row is
committed and hands back `WrittenFile`s, which the endpoint turns into its columns. `Usage` carries
the billing units of a request's answers to the cost estimate.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class FileNeed:
    """A file a row names (in `column`, as `path`) that must be read before the row can be prepared:
    whole (an image inlined as a data URL), or only its size and first `head_bytes` (an audio check)."""

    column: str
    path: str
    whole: bool = False
    head_bytes: int = 0
    root: str | None = None  # an input prefix in object storage that `path` is relative to


@dataclass(frozen=True, slots=True)
class FileFacts:
    """What the source side read for a FileNeed. `where` is the resolved local path or URI; a local
    file is uploaded by path (streamed), an object in storage by `read` (whole, once per attempt)."""

    name: str
    where: str
    size: int
    head: bytes = b""
    data: bytes | None = None
    read: Callable[[], bytes] | None = None
    error: str | None = None  # why it could not be read (the endpoint fails the row, in its words)
    in_storage: bool = False  # an object in storage (else a local file)
    regular: bool = True  # False: the path is there but not a regular file (a folder, a device)


@dataclass(frozen=True, slots=True)
class FileOutput:
    """A file one result leaves beside its row: its bytes, or the URL to fetch them from. `name` gives
    its path under the output folder from its bytes (an image's extension follows its content)."""

    name: Callable[[bytes], str]
    data: bytes | None = None
    url: str | None = None
    kind: str = "file"  # and `index`: how errors name it ("downloading image 1 failed")
    index: int = 0


@dataclass(frozen=True, slots=True)
class WrittenFile:
    """A file written whole (temp, fsync, rename or one upload) for a result."""

    relative: str
    size: int
    sha256: str

    @classmethod
    def of(cls, relative: str, data: bytes) -> WrittenFile:
        return cls(relative, len(data), hashlib.sha256(data).hexdigest())


@dataclass(frozen=True, slots=True)
class Usage:
    """Billing units of the answers to one request, for the run's totals and cost estimate."""

    tokens_in: int = 0
    tokens_out: int = 0
    images: int = 0
    audio_seconds: float = 0.0
    tokens_cached: int = 0  # of tokens_in: read from the prompt cache (billed at the cached price)
    tokens_reasoning: int = 0  # of tokens_out: the model's hidden reasoning


def safe_relative(name: str) -> str:
    """A row id as a relative file path that cannot climb out of the output folder."""
    parts = [p for p in name.replace("\\", "/").split("/") if p not in ("", ".", "..")]
    return "/".join(parts) or "_"
