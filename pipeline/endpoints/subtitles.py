"""SubRip (srt) and WebVTT (vtt) cues: read either, write either.

Transcription answers come as srt, vtt or verbose_json segments; sidecar files and the plain
`text` column are derived from the same cue list, whichever shape the service sent.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_STAMP = re.compile(r"^(?:(\d+):)?(\d{1,2}):(\d{1,2})[,.](\d{1,3})$")


@dataclass(frozen=True, slots=True)
class Cue:
    start: float
    end: float
    text: str


def parse_stamp(value: str) -> float | None:
    """`HH:MM:SS,mmm` (srt) or `[HH:]MM:SS.mmm` (vtt) in seconds; None if it is not one."""
    match = _STAMP.match(value.strip())
    if not match:
        return None
    hours, minutes, seconds, millis = match.groups()
    return int(hours or 0) * 3600 + int(minutes) * 60 + int(seconds) + int(millis.ljust(3, "0")) / 1000


def parse_cues(text: str) -> list[Cue]:
    """Cues of an srt or vtt document; headers, cue numbers, NOTE blocks and cue settings are skipped."""
    cues = []
    for block in re.split(r"\n\s*\n", text.replace("\r\n", "\n").strip()):
        lines = block.split("\n")
        timing = next((i for i, line in enumerate(lines) if "-->" in line), None)
        if timing is None:
            continue
        left, right = lines[timing].split("-->", 1)
        start, end = parse_stamp(left), parse_stamp(right.split()[0] if right.split() else "")
        if start is None or end is None:
            continue
        cues.append(Cue(start, end, "\n".join(lines[timing + 1:]).strip()))
    return cues


def plain_text(cues: list[Cue]) -> str:
    return " ".join(" ".join(cue.text.split()) for cue in cues if cue.text)


def format_stamp(seconds: float, mark: str) -> str:
    millis = max(0, round(seconds * 1000))
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    return f"{hours:02d}:{minutes:02d}:{rest // 1000:02d}{mark}{rest % 1000:03d}"


def to_srt(cues: list[Cue]) -> str:
    blocks = [f"{number}\n{format_stamp(c.start, ',')} --> {format_stamp(c.end, ',')}\n{c.text}\n"
              for number, c in enumerate(cues, start=1)]
    return "\n".join(blocks)


def to_vtt(cues: list[Cue]) -> str:
    blocks = [f"{format_stamp(c.start, '.')} --> {format_stamp(c.end, '.')}\n{c.text}\n" for c in cues]
    return "WEBVTT\n\n" + "\n".join(blocks)
