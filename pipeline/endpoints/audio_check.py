"""Checks an audio file before upload: readable, not empty, under the size limit (when one is given: a
transcription job splits a longer file instead), and really the format its extension claims (magic bytes).
A file that fails is never uploaded. The same checks apply to a local file and to an object in storage;
the source side reads its size and first bytes (sources/files.py), these functions only judge them."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import PurePosixPath

from pipeline.endpoints.files import FileFacts

# The service refuses uploads over 25 MB (OpenAI's help centre: 25 MiB; the emulator uses the same).
MAX_AUDIO_BYTES = 25 * 1024 * 1024
HEADER_BYTES = 16

CONTENT_TYPES = {
    "flac": "audio/flac", "mp3": "audio/mpeg", "mp4": "audio/mp4", "mpeg": "audio/mpeg", "mpga": "audio/mpeg",
    "m4a": "audio/mp4", "ogg": "audio/ogg", "oga": "audio/ogg", "wav": "audio/wav", "webm": "audio/webm",
}
AUDIO_EXTENSIONS = tuple(CONTENT_TYPES)


class AudioFileError(ValueError):
    """Why a file cannot be uploaded; the endpoint turns it into a RowError."""


def _is_wav(head: bytes) -> bool:
    return head[:4] == b"RIFF" and head[8:12] == b"WAVE"


def _is_mpeg_audio(head: bytes) -> bool:
    """An ID3v2 tag, or an MPEG audio frame: 11 sync bits, a known version and a layer."""
    if head[:3] == b"ID3":
        return True
    if len(head) < 2 or head[0] != 0xFF or head[1] & 0xE0 != 0xE0:
        return False
    version, layer = (head[1] >> 3) & 0b11, (head[1] >> 1) & 0b11
    return version != 0b01 and layer != 0b00  # 01 and 00 are reserved values


def _is_mpeg(head: bytes) -> bool:
    # .mpeg may also hold an MPEG program stream (pack header 00 00 01 BA).
    return _is_mpeg_audio(head) or head[:4] == b"\x00\x00\x01\xba"


def _is_iso_media(head: bytes) -> bool:
    return head[4:8] == b"ftyp"


MAGIC: dict[str, tuple[Callable[[bytes], bool], str]] = {
    "wav": (_is_wav, "RIFF/WAVE"),
    "flac": (lambda head: head[:4] == b"fLaC", "fLaC"),
    "ogg": (lambda head: head[:4] == b"OggS", "OggS"),
    "oga": (lambda head: head[:4] == b"OggS", "OggS"),
    "mp3": (_is_mpeg_audio, "an ID3 tag or MPEG frame sync"),
    "mpga": (_is_mpeg_audio, "an ID3 tag or MPEG frame sync"),
    "mpeg": (_is_mpeg, "an ID3 tag or MPEG frame sync"),
    "mp4": (_is_iso_media, "an ftyp box"),
    "m4a": (_is_iso_media, "an ftyp box"),
    "webm": (lambda head: head[:4] == b"\x1a\x45\xdf\xa3", "an EBML header (1A45DFA3)"),
}


def extension_of(path: str) -> str:
    return PurePosixPath(path.replace("\\", "/")).suffix.lower().lstrip(".")


def content_matches(extension: str, head: bytes) -> bool:
    """Whether the first bytes of a file look like `extension` claims."""
    check = MAGIC.get(extension)
    return check is not None and check[0](head)


def audio_facts_problem(path: str, facts: FileFacts | None, max_bytes: int | None = MAX_AUDIO_BYTES) -> int:
    """The size of an audio file that may be uploaded; AudioFileError saying why not. `facts` is what
    the source side read of it (None: not read, as for a name that is not audio)."""
    name = PurePosixPath(path.replace("\\", "/")).name
    extension = extension_of(path)
    if extension not in MAGIC:
        suffix = PurePosixPath(name).suffix
        raise AudioFileError(f"{name}: unsupported audio type {suffix or '(no extension)'!r}; "
                             f"use one of {', '.join(AUDIO_EXTENSIONS)}")
    if facts is None:
        raise AudioFileError(f"{path}: not read")
    if facts.error is not None:
        raise AudioFileError(_unreadable(facts))
    problem = audio_problem(facts.name, extension, facts.size, facts.head, max_bytes)
    if problem:
        raise AudioFileError(problem)
    return facts.size


def _unreadable(facts: FileFacts) -> str:
    if facts.in_storage:
        return f"cannot read the audio object ({facts.error})"
    if not facts.regular:
        return f"{facts.where}: not a regular file"
    return f"{facts.where}: cannot read the audio file ({facts.error})"


def audio_problem(name: str, extension: str, size: int, head: bytes,
                  max_bytes: int | None = MAX_AUDIO_BYTES) -> str | None:
    """Why a file of this size and first bytes may not be uploaded as `extension` audio (None: it may)."""
    if size == 0:
        return f"{name}: the file is empty (0 bytes)"
    if max_bytes is not None and size > max_bytes:
        return (f"{name}: {size / 1e6:.1f} MB is over the service's {max_bytes // (1024 * 1024)} MB upload limit; "
                "split or compress it")
    if not content_matches(extension, head):
        return (f"{name}: the content is not {extension} audio (expected {MAGIC[extension][1]} at the start; "
                f"the file begins {head[:8].hex(' ')}); fix the extension or the file")
    return None
