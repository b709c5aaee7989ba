#!/usr/bin/env python3
"""Regenerate the deliberately broken inputs in ``tests/data/bad/`` and their README.

Usage::

    python tests/data/bad/make_bad_data.py

Every file is described here, line by line, and README.md is written from the same
descriptions so the two cannot drift apart.  The good recordings in ``audio_bad/``
need espeak-ng and sox; without them the script keeps the committed recordings (or
writes a plain tone WAV and skips the FLAC when there is none).
"""

from __future__ import annotations

import json
import math
import shutil
import struct
import subprocess
import sys
import tempfile
import wave
import zlib
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
TOKEN_LIMIT_CHARS = 48_000  # about 12,000 tokens at 4 characters a token (> 8192)

GOOD_TEXTS = [
    "The batch job finished in four minutes with no errors.",
    "Your order has shipped and should arrive on Thursday.",
    "The library closes at eight o'clock on weekdays.",
    "Preheat the oven to one hundred and eighty degrees.",
    "The server will be down for maintenance on Sunday night.",
    "Mind the gap between the train and the platform.",
    "Please remember to bring your identification to the appointment.",
    "The report shows a twelve percent increase in sales this quarter.",
    "Congratulations, your application has been approved.",
    "Water the tomatoes every morning during the hot weather.",
]


@dataclass
class Line:
    """One line of a JSONL file: its raw bytes and, if it is bad, why."""

    raw: bytes
    problem: str | None = None


@dataclass
class JsonlFile:
    """A JSONL test file: name, purpose and its lines."""

    name: str
    purpose: str
    lines: list[Line] = field(default_factory=list)


def row(obj: object, problem: str | None = None) -> Line:
    """A line holding ``obj`` serialised as JSON."""
    return Line(json.dumps(obj, ensure_ascii=False).encode("utf-8"), problem)


def good(row_id: str, index: int) -> Line:
    """A valid ``{"id", "text"}`` row."""
    return row({"id": row_id, "text": GOOD_TEXTS[index % len(GOOD_TEXTS)]})


def raw(text: bytes, problem: str) -> Line:
    """A line given as raw bytes (not valid JSON / not valid UTF-8)."""
    return Line(text, problem)


def long_text(min_chars: int = TOKEN_LIMIT_CHARS) -> str:
    """Deterministic English prose longer than ``min_chars`` characters."""
    paragraphs: list[str] = []
    index = 0
    while sum(len(p) + 2 for p in paragraphs) < min_chars:
        sentence = GOOD_TEXTS[index % len(GOOD_TEXTS)]
        paragraphs.append(f"Paragraph {index + 1}. {sentence} " + " ".join(GOOD_TEXTS[:5]))
        index += 1
    return "\n\n".join(paragraphs)


def jsonl_files() -> list[JsonlFile]:
    """Every JSONL test file with its good and bad lines."""
    return [
        JsonlFile(
            "malformed.jsonl",
            "Good rows mixed with lines that are not valid JSON objects.",
            [
                good("ok-1", 0),
                good("ok-2", 1),
                raw(b'{"id": "bad-3", "text": "unterminated string}', "unterminated string"),
                good("ok-4", 2),
                raw(b"this line is not json at all", "plain text, not JSON"),
                raw(b'{"id": "bad-6", "text": "trailing comma",}', "trailing comma"),
                good("ok-7", 3),
                raw(b"[1, 2, 3]", "valid JSON but an array, not an object"),
                raw(b'{"id": "bad-9", "text": "no closing brace"', "missing closing brace"),
                good("ok-10", 4),
            ],
        ),
        JsonlFile(
            "missing_id.jsonl",
            "Rows without an id.",
            [
                good("ok-1", 0),
                row({"text": GOOD_TEXTS[1]}, "no `id` key"),
                good("ok-3", 2),
                row({"id": None, "text": GOOD_TEXTS[3]}, "`id` is null"),
                good("ok-5", 4),
            ],
        ),
        JsonlFile(
            "missing_text.jsonl",
            "Rows without a text field.",
            [
                good("ok-1", 0),
                row({"id": "bad-2", "body": GOOD_TEXTS[1]}, "no `text` key (has `body`)"),
                good("ok-3", 2),
                row({"id": "bad-4"}, "only an `id`"),
                good("ok-5", 4),
            ],
        ),
        JsonlFile(
            "wrong_type.jsonl",
            "Rows whose text is not a string.",
            [
                good("ok-1", 0),
                row({"id": "bad-2", "text": 42}, "`text` is a number"),
                row({"id": "bad-3", "text": ["a", "list", "of", "words"]}, "`text` is a list"),
                row({"id": "bad-4", "text": None}, "`text` is null"),
                row({"id": "bad-5", "text": {"en": GOOD_TEXTS[1]}}, "`text` is an object"),
                row({"id": "bad-6", "text": True}, "`text` is a boolean"),
                good("ok-7", 2),
            ],
        ),
        JsonlFile(
            "empty_strings.jsonl",
            "Rows with empty or whitespace-only strings.",
            [
                good("ok-1", 0),
                row({"id": "bad-2", "text": ""}, "`text` is empty"),
                row({"id": "bad-3", "text": "  \n\t "}, "`text` is whitespace only"),
                row({"id": "", "text": GOOD_TEXTS[1]}, "`id` is empty"),
                good("ok-5", 2),
            ],
        ),
        JsonlFile(
            "too_long.jsonl",
            "One text far over an 8,192-token input limit, between good rows.",
            [
                good("ok-1", 0),
                row(
                    {"id": "bad-2", "text": long_text()},
                    f"`text` is over {TOKEN_LIMIT_CHARS:,} characters (~12,000 estimated tokens)",
                ),
                good("ok-3", 1),
            ],
        ),
        JsonlFile(
            "invalid_utf8.jsonl",
            "A line with raw bytes that are not valid UTF-8.",
            [
                good("ok-1", 0),
                raw(
                    b'{"id": "bad-2", "text": "caf\xe9 au lait \xff\xfe costs \x80 3"}',
                    "bytes 0xE9 (Latin-1 e-acute), 0xFF 0xFE and 0x80: invalid UTF-8",
                ),
                good("ok-3", 1),
                good("ok-4", 2),
            ],
        ),
        JsonlFile(
            "duplicate_ids.jsonl",
            "Rows that reuse an id.",
            [
                good("dup-1", 0),
                good("dup-2", 1),
                row({"id": "dup-1", "text": GOOD_TEXTS[5]}, "`dup-1` again, different text"),
                good("dup-3", 2),
                row({"id": "dup-2", "text": GOOD_TEXTS[1]}, "`dup-2` again, identical to line 2"),
            ],
        ),
        JsonlFile("empty.jsonl", "An empty file (0 bytes)."),
    ]


def write_jsonl_file(spec: JsonlFile) -> None:
    """Write one JSONL test file, byte for byte."""
    data = b"".join(line.raw + b"\n" for line in spec.lines)
    (HERE / spec.name).write_bytes(data)


def write_wrong_schema_parquet(path: Path) -> None:
    """A Parquet file with no ``text`` column and a struct-typed ``id``."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    id_type = pa.struct([("source", pa.string()), ("number", pa.int64())])
    table = pa.table(
        {
            "id": pa.array([{"source": "a", "number": i} for i in range(3)], type=id_type),
            "body": pa.array(GOOD_TEXTS[:3], type=pa.string()),
        }
    )
    pq.write_table(table, path)


def tiny_png() -> bytes:
    """The bytes of a valid 1x1 red PNG image."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        body = kind + payload
        return struct.pack(">I", len(payload)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\x00\xff\x00\x00")
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")


def write_tone_wav(path: Path, seconds: float = 1.0, rate: int = 16000) -> None:
    """A 440 Hz tone, 16 kHz mono 16-bit (fallback when espeak-ng is missing)."""
    samples = (int(8000 * math.sin(2 * math.pi * 440 * n / rate)) for n in range(int(seconds * rate)))
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(b"".join(struct.pack("<h", s) for s in samples))


def speak(sentence: str, target: Path) -> None:
    """Record ``sentence`` with espeak-ng and convert it with sox (16 kHz mono 16-bit)."""
    with tempfile.TemporaryDirectory() as tmp:
        raw_wav = Path(tmp) / "raw.wav"
        subprocess.run(["espeak-ng", "-v", "en-us", "-s", "165", "-w", str(raw_wav), "--", sentence], check=True)
        subprocess.run(["sox", "-R", str(raw_wav), "-r", "16000", "-c", "1", "-b", "16", str(target)], check=True)
    target.with_name(target.stem + ".expected.txt").write_text(sentence + "\n", encoding="utf-8")


GOOD_RECORDINGS = {
    "good.wav": "This is a good recording.",
    "sub/good2.flac": "This recording sits in a nested folder.",
}


def write_audio_bad(folder: Path) -> None:
    """Broken audio files beside good ones (good ones kept if tools are missing)."""
    (folder / "sub").mkdir(parents=True, exist_ok=True)
    (folder / "zero.wav").write_bytes(b"")
    (folder / "mislabeled.mp3").write_text("This is a text file, not an MP3.\n", encoding="utf-8")
    (folder / "mislabeled.wav").write_bytes(tiny_png())
    have_tools = shutil.which("espeak-ng") and shutil.which("sox")
    for name, sentence in GOOD_RECORDINGS.items():
        target = folder / name
        if have_tools:
            speak(sentence, target)
        elif target.exists():
            print(f"espeak-ng/sox missing: keeping the committed {name}", file=sys.stderr)
        elif target.suffix == ".wav":
            write_tone_wav(target)
        else:
            print(f"espeak-ng/sox missing: cannot make {name}", file=sys.stderr)


def readme(specs: list[JsonlFile]) -> str:
    """README.md text describing every file and every bad line."""
    out = [
        "# Broken inputs for the reliability tests",
        "",
        "Generated by `python tests/data/bad/make_bad_data.py` (do not edit by hand;",
        "this README is written by the same script). Line numbers start at 1. Good rows",
        'are `{"id", "text"}` objects with ids `ok-N` (N = line number); bad rows use',
        "`bad-N` (in `duplicate_ids.jsonl` every id is `dup-N` on purpose).",
        "",
        "## JSONL files",
        "",
    ]
    for spec in specs:
        bad = [(n, line.problem) for n, line in enumerate(spec.lines, 1) if line.problem]
        out.append(f"### `{spec.name}` ({len(spec.lines)} lines, {len(bad)} bad)")
        out.append("")
        out.append(spec.purpose)
        out.append("")
        if bad:
            out.extend(f"- line {n}: {problem}" for n, problem in bad)
            out.append("")
    out += [
        "## Other files",
        "",
        "- `wrong_schema.parquet`: 3 rows, columns `id` (struct<source: string, number:",
        "  int64>) and `body` (string); there is no `text` column and `id` is not a string.",
        "- `empty_folder/`: holds only `.gitkeep`, so it has no audio files at all.",
        "- `audio_bad/`: a folder of audio inputs, some broken:",
        "  - `zero.wav`: 0 bytes.",
        "  - `mislabeled.mp3`: a UTF-8 text file with an `.mp3` name.",
        "  - `mislabeled.wav`: a 1x1 PNG image with a `.wav` name.",
        "  - `good.wav`: a valid 16 kHz mono 16-bit WAV (espeak-ng speech);",
        "    `good.expected.txt` holds its sentence.",
        "  - `sub/good2.flac`: a valid FLAC in a nested folder (sox);",
        "    `sub/good2.expected.txt` holds its sentence.",
        "",
        "So a scan of `audio_bad/` finds 5 audio-named files: 2 decodable, 3 broken.",
        "",
    ]
    return "\n".join(out)


def main() -> int:
    """Write every file in this folder."""
    specs = jsonl_files()
    for spec in specs:
        write_jsonl_file(spec)
    write_wrong_schema_parquet(HERE / "wrong_schema.parquet")
    (HERE / "empty_folder").mkdir(exist_ok=True)
    (HERE / "empty_folder" / ".gitkeep").write_bytes(b"")
    write_audio_bad(HERE / "audio_bad")
    (HERE / "README.md").write_text(readme(specs), encoding="utf-8")
    print(f"wrote {len(specs)} JSONL files, wrong_schema.parquet, empty_folder/, audio_bad/, README.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
