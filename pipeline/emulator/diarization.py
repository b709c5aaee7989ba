"""Who speaks when (gpt-4o-transcribe-diarize): speaker labels and known speakers' reference clips.

A segment's speaker is the pitch band it was heard in. Unnamed speakers are labelled "A", "B", ... in
order of first appearance within the upload, so two chunks of one recording may label one person
differently, as the service does; a speaker whose band matches a known_speaker_references[] clip gets
that clip's name from known_speaker_names[], and the letters skip the names the known speakers have.
"""

from __future__ import annotations

import base64
import binascii
import itertools
import re
import string
from typing import Any

from pipeline.audio.errors import AudioDecodeError
from pipeline.emulator.exchange import Rejection, invalid
from pipeline.emulator.hearing import voice_of
from pipeline.emulator.transcribers import UNDECODABLE
from pipeline.emulator.transcripts import Transcript, usage_seconds

MAX_KNOWN_SPEAKERS = 4
REFERENCE_SECONDS = (2.0, 10.0)
_DATA_URL = re.compile(r"^data:audio/[\w.+-]+(;[\w.+-]+=[\w.+-]+)*;base64,(?P<data>.*)$", re.DOTALL)


def reference_clips(fields: dict[str, Any]) -> list[tuple[str, bytes]]:
    """(name, audio) of each known speaker the request names; the service's 400 for a malformed list."""
    names, references = _as_list(fields.get("known_speaker_names")), _as_list(fields.get("known_speaker_references"))
    if len(names) != len(references):
        raise invalid(f"known_speaker_names[] has {len(names)} entries but known_speaker_references[] has "
                      f"{len(references)}; they must match one to one.", "known_speaker_references", "invalid_value")
    if len(references) > MAX_KNOWN_SPEAKERS:
        raise invalid(f"At most {MAX_KNOWN_SPEAKERS} known speakers are supported, got {len(references)}.",
                      "known_speaker_references", "invalid_value")
    return [(name, _clip(index, reference)) for index, (name, reference) in enumerate(zip(names, references,
                                                                                          strict=True))]


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else [str(item) for item in value]


def _clip(index: int, reference: str) -> bytes:
    match = _DATA_URL.match(reference.strip())
    try:
        if match is None:
            raise ValueError
        return base64.b64decode(match["data"], validate=True)
    except (ValueError, binascii.Error):
        raise _bad_reference(index, "expected a data URL (data:audio/<format>;base64,<audio>).") from None


def known_speakers(clips: list[tuple[str, bytes]]) -> dict[int, str]:
    """Name by pitch band, from the reference clips (decodes them: CPU work, run it off the event loop)."""
    known: dict[int, str] = {}
    for index, (name, audio) in enumerate(clips):
        try:
            duration, band = voice_of(audio)
        except AudioDecodeError:
            raise _bad_reference(index, UNDECODABLE) from None
        low, high = REFERENCE_SECONDS
        if not low <= duration <= high:
            raise _bad_reference(index, f"a reference must be between {low:g} and {high:g} seconds long, got "
                                        f"{duration:.2f} seconds.")
        known.setdefault(band, name)  # two clips of one voice: the first names it
    return known


def _bad_reference(index: int, reason: str) -> Rejection:
    return invalid(f"Invalid 'known_speaker_references[{index}]': {reason}", "known_speaker_references",
                   "invalid_value")


def speaker_labels(transcript: Transcript, known: dict[int, str]) -> list[str]:
    """Each segment's label: the known speaker's name for a referenced band, else the next letter that no
    known speaker is called (a client naming its references "A", "B" must not see "A" twice)."""
    taken = set(known.values())
    letters: dict[int, str] = {}
    labels = []
    for segment in transcript.segments:
        if segment.speaker in known:
            labels.append(known[segment.speaker])
            continue
        if segment.speaker not in letters:
            letters[segment.speaker] = _next_letter(taken)
            taken.add(letters[segment.speaker])
        labels.append(letters[segment.speaker])
    return labels


def _next_letter(taken: set[str]) -> str:
    return next(label for label in map(_letter, itertools.count()) if label not in taken)


def _letter(index: int) -> str:
    """A, B, ... Z, then AA, AB, ... (a recording with more than 26 speakers is unlikely, not impossible)."""
    letters = string.ascii_uppercase
    if index < len(letters):
        return letters[index]
    return _letter(index // len(letters) - 1) + letters[index % len(letters)]


def diarized_json(transcript: Transcript, known: dict[int, str], usage: bool) -> dict[str, Any]:
    """The diarized_json answer; `usage` (billed by duration) on OpenAI's routes."""
    segments = [
        {"type": "transcript.text.segment", "id": f"seg_{index}", "start": segment.start, "end": segment.end,
         "text": segment.text, "speaker": label}
        for index, (segment, label) in enumerate(zip(transcript.segments, speaker_labels(transcript, known),
                                                     strict=True))
    ]
    body: dict[str, Any] = {"task": "transcribe", "duration": transcript.duration, "text": transcript.text,
                            "segments": segments}
    if usage:
        body["usage"] = {"type": "duration", "seconds": usage_seconds(transcript)}
    return body
