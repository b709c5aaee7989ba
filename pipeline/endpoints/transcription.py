"""Transcription and translation (Whisper): one audio file per request, streamed up as multipart.

Output columns, the same whatever `response_format` is (what a format cannot give stays null):
    text       plain text; for srt/vtt derived from the cues
    language   verbose_json only
    duration   verbose_json only, seconds
    segments   list<struct<id, start, end, text>>, verbose_json with segment granularity
    words      list<struct<word, start, end>>, verbose_json with word granularity
    subtitles  the srt or vtt document as the service sent it
    format     the response_format asked for
    sidecars   paths of the sidecar files written, relative to the output folder

Sidecars (`[output] sidecars`) go to `<output>/sidecars/<row id>.<ext>` (a folder input's id is the
file's relative path, so `en/a.wav` gives `sidecars/en/a.wav.srt`):
    txt   always;
    srt, vtt   from an srt or vtt answer (either converts to the other), or from verbose_json segments;
    json  the service's JSON answer byte for byte (response_format json or verbose_json).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from pipeline.endpoints.audio_check import (
    CONTENT_TYPES,
    HEADER_BYTES,
    AudioFileError,
    audio_facts_problem,
    extension_of,
)
from pipeline.endpoints.base import Endpoint, FormPart, HttpResponse, Item, Request, RowError, text_field
from pipeline.endpoints.files import FileNeed, FileOutput, Usage, WrittenFile, safe_relative
from pipeline.endpoints.speech_models import ANY_MODEL_MAX_S, SpeechModel, speech_model
from pipeline.endpoints.stitching import ChunkAnswer, prompt_tail, stitch
from pipeline.endpoints.subtitles import Cue, parse_cues, plain_text, to_srt, to_vtt
from pipeline.errors import InvalidResponseError, SpecError
from pipeline.sources.base import Row
from pipeline.spec import JobSpec

FORMATS = ("json", "text", "srt", "vtt", "verbose_json", "diarized_json")
TEXT_FORMATS = ("text", "srt", "vtt")  # answered as text/plain
GRANULARITIES = ("word", "segment")
SIDECAR_DIR = "sidecars"
RAW_KEY = "_raw"  # the answer body, carried from parse to outputs() for the json sidecar; never a column
AUDIO = "audio"  # the FileNeed of a row's audio file
MAX_UPLOAD_BYTES = 25 * 1024 * 1024  # the service's limit on one upload (OpenAI: 25 MiB; Azure: 25 MB)
COMPRESS_BELOW = 0.5  # re-encode a file that fits when that at least halves its bytes
# Below this a file goes up as it is: opening, decoding and encoding it costs more time than the bytes saved
# (1,000 half-second WAVs ran at 0.67x the openai SDK's pace re-encoded), and no file this small holds more
# than LONG_ENOUGH_S of speech at a bit rate the service decodes well.
COMPRESS_MIN_BYTES = 1 << 20
LONG_ENOUGH_S = 600.0
PROMPT_CHARS = 800  # a chunk's prompt: the job's prompt and the previous chunk's last words, at most this long

SEGMENT = pa.struct([("id", pa.int64()), ("start", pa.float64()), ("end", pa.float64()), ("text", pa.string()),
                     ("speaker", pa.string())])
WORD = pa.struct([("word", pa.string()), ("start", pa.float64()), ("end", pa.float64())])


@dataclass(frozen=True, slots=True)
class AudioUpload:
    """An audio file that passed the checks; the transport opens and streams it per attempt (a local file),
    or reads it whole per attempt (an object in storage: `read` is set)."""

    path: str
    filename: str
    content_type: str
    size: int
    read: Callable[[], bytes] | None = None


@dataclass(frozen=True, slots=True)
class AudioPlan:
    """How a recording goes up: as it is (one request), or decoded and sent in chunks re-encoded as Ogg/Opus
    (one chunk when it only needs compressing)."""

    chunked: bool
    max_chunk_s: float
    why: str


@dataclass(frozen=True, slots=True)
class ChunkUpload:
    """One chunk of a recording, encoded, with the context it is sent with."""

    data: bytes
    filename: str
    content_type: str
    prompt: str | None = None  # the job's prompt and the end of the previous chunk's transcript
    speakers: tuple[tuple[str, str], ...] = ()  # known speakers heard so far: (label, audio data URL)


class Transcription(Endpoint):
    kind = "transcription"
    op = "audio/transcriptions"
    counts_tokens = False  # speech-to-text quotas are requests per minute only
    writes_files = True  # sidecars; outputs() names none when none are configured

    def __init__(self, spec: JobSpec) -> None:
        super().__init__(spec)
        self.format = str(self.params.get("response_format", "json"))
        self.granularities = _as_list(self.params.get("timestamp_granularities"))
        self.sidecars = spec.output.sidecars
        self.model = speech_model(spec.service.model) or speech_model(spec.service.model_name)
        self.max_chunk_s = spec.audio.max_chunk_seconds or (self.model.max_chunk_s if self.model else ANY_MODEL_MAX_S)
        self.compress = spec.audio.compress
        self._check_params()
        self._check_model(self.model)
        if self.diarizes and "chunking_strategy" not in self.params:
            self.params = {**self.params, "chunking_strategy": "auto"}  # required over 30 s of audio
        self._param_parts = form_fields(self.params)
        # A folder source gives absolute paths (or object URIs); a table's relative paths start at its folder.
        self._table_folder = None if spec.input.is_folder() else spec.input.path.parent
        if self._table_folder is not None and not spec.input.file:
            raise self._spec_error("input.file", "required for a table input: the column of audio file paths "
                                   "(relative paths start at the table's folder)")
        self._file_column = spec.input.file or "path"

    # ---- spec checks (the generic ones live in spec.py; these depend on the endpoint)

    def _spec_error(self, key: str, message: str) -> SpecError:
        return SpecError(f"{self.spec.source_file}: {key}: {message}")

    def _check_params(self) -> None:
        if self.format not in FORMATS:
            raise self._spec_error("params.response_format",
                                   f"must be one of {', '.join(FORMATS)}; got {self.format!r}")
        unknown = [g for g in self.granularities if g not in GRANULARITIES]
        if unknown:
            raise self._spec_error("params.timestamp_granularities", f"use word and/or segment, not {unknown}")
        if self.granularities and self.format != "verbose_json":
            raise self._spec_error("params.timestamp_granularities", "needs response_format = \"verbose_json\"")
        temperature = self.params.get("temperature", 0)
        if not isinstance(temperature, int | float) or not 0 <= temperature <= 1:
            raise self._spec_error("params.temperature", f"must be from 0 to 1 for audio, got {temperature!r}")
        for sidecar in self.sidecars:
            if not self._can_write(sidecar):
                raise self._spec_error("output.sidecars", _SIDECAR_NEEDS[sidecar])

    @property
    def diarizes(self) -> bool:
        return self.format == "diarized_json" or bool(self.model and self.model.diarize)

    @property
    def takes_prompt(self) -> bool:
        """Whether chunks carry the previous chunk's words (an unknown model is assumed to take a prompt,
        unless it answers diarized_json: the diarize model refuses one)."""
        return self.model.prompt if self.model else not self.diarizes

    def _check_model(self, model: SpeechModel | None) -> None:
        """What the named model does not accept, refused before any request (one line each)."""
        if model is None:
            if self.format == "diarized_json" and "prompt" in self.params:
                raise self._spec_error("params.prompt", "gpt-4o-transcribe-diarize does not take a prompt")
            return
        if self.format not in model.formats:
            raise self._spec_error("params.response_format", f"{model.name} answers only "
                                   f"{' or '.join(model.formats)}, not {self.format!r}")
        if self.granularities and not model.timestamps:
            raise self._spec_error("params.timestamp_granularities", f"{model.name} does not give timestamps "
                                   "(whisper does, with verbose_json); remove it")
        if "prompt" in self.params and not model.prompt:
            raise self._spec_error("params.prompt", f"{model.name} does not take a prompt; remove it")
        if self.kind == "translation" and not model.translate:
            raise self._spec_error("service.model", f"{model.name} does not translate; audio/translations "
                                   "takes whisper")

    def _can_write(self, sidecar: str) -> bool:
        if sidecar == "json":
            return self.format in ("json", "verbose_json")
        if sidecar in ("srt", "vtt"):
            segments = self.format == "diarized_json" or (
                self.format == "verbose_json" and (not self.granularities or "segment" in self.granularities))
            return self.format in ("srt", "vtt") or segments
        return True

    # ---- requests

    def needs(self, row: Row) -> list[FileNeed]:
        """The row's audio file: its size and first bytes are checked before it is sent. A name whose
        extension is not audio is refused without being read."""
        need = self._audio_need(row)
        if extension_of(need.path) not in CONTENT_TYPES:
            return []
        return [need]

    def prepare(self, row: Row) -> Item:
        need = self._audio_need(row)
        facts = row.files.get(AUDIO)
        try:
            size = audio_facts_problem(need.path, facts, max_bytes=None)  # a long file is split, not refused
        except AudioFileError as exc:
            raise RowError(f"row {row.id!r}: {exc}") from None
        assert facts is not None  # audio_facts_problem refuses a file that was not read
        upload = AudioUpload(facts.where, facts.name, CONTENT_TYPES[extension_of(facts.name)], size, facts.read)
        return Item(row, upload, tokens=0)

    def _audio_need(self, row: Row) -> FileNeed:
        if self._table_folder is None and self.spec.input.uri is not None:
            return FileNeed(AUDIO, str(row.fields["relpath"]), head_bytes=HEADER_BYTES, root=self.spec.input.uri)
        if self._table_folder is None:
            return FileNeed(AUDIO, str(row.fields["path"]), head_bytes=HEADER_BYTES)
        path = Path(text_field(row, self._file_column)).expanduser()
        return FileNeed(AUDIO, str(path if path.is_absolute() else self._table_folder / path), head_bytes=HEADER_BYTES)

    def build(self, batch: list[Item]) -> Request:
        (item,) = batch
        upload: AudioUpload = item.payload
        params = self._param_parts
        local = None if upload.read else upload.path

        def form() -> list[FormPart]:
            file = FormPart("file", path=local, filename=upload.filename, content_type=upload.content_type,
                            read=upload.read)
            return [file, *params]

        return self._request(batch, form)

    def _request(self, batch: list[Item], form: Callable[[], list[FormPart]]) -> Request:
        if self.format in TEXT_FORMATS:
            return Request(self.op, batch, form=form, tokens=0, accept="text")
        return Request(self.op, batch, form=form, tokens=0)

    # ---- long recordings: planned here, decoded and cut by the engine (pipeline/audio), stitched here

    def worth_probing(self, size: int) -> bool:
        """Whether a file's duration must be read before it is sent: a small file is sent as it is, unless
        chunks are short enough that even a small file may be longer."""
        return size >= COMPRESS_MIN_BYTES or self.max_chunk_s < LONG_ENOUGH_S

    def plan_upload(self, size: int, duration_s: float | None, encoded_bytes: int | None) -> AudioPlan:
        """Chunks when the file is over the byte limit or the model's duration, or when re-encoding at least
        halves it ([audio] compress); otherwise the file goes up as it is. `encoded_bytes`: what the chunk
        encoding would make of it (None: unknown duration)."""
        if size > MAX_UPLOAD_BYTES:
            return AudioPlan(True, self.max_chunk_s, f"{size / 1e6:.1f} MB is over the 25 MB upload limit")
        if duration_s is not None and duration_s > self.max_chunk_s:
            return AudioPlan(True, self.max_chunk_s, f"{duration_s:.0f} s is longer than {self.max_chunk_s:.0f} s")
        compressible = self.compress and size >= COMPRESS_MIN_BYTES
        if compressible and encoded_bytes is not None and encoded_bytes < size * COMPRESS_BELOW:
            return AudioPlan(True, self.max_chunk_s, f"re-encoded, {size / max(encoded_bytes, 1):.0f}x smaller")
        return AudioPlan(False, self.max_chunk_s, "as it is")

    def build_chunk(self, item: Item, chunk: ChunkUpload) -> Request:
        params = self._chunk_params(chunk)

        def form() -> list[FormPart]:
            return [FormPart("file", chunk.data, filename=chunk.filename, content_type=chunk.content_type), *params]

        return self._request([item], form)

    def _chunk_params(self, chunk: ChunkUpload) -> list[FormPart]:
        params = dict(self.params)
        if chunk.prompt and self.takes_prompt:
            params["prompt"] = chunk.prompt
        if chunk.speakers and self.diarizes and "known_speaker_names" not in params:
            params["known_speaker_names"] = [name for name, _ in chunk.speakers]
            params["known_speaker_references"] = [reference for _, reference in chunk.speakers]
        return form_fields(params)

    def chunk_prompt(self, previous_text: str | None) -> str | None:
        """The prompt of the next chunk: the job's own, then the last words heard, within PROMPT_CHARS."""
        if not self.takes_prompt:
            return None
        own = str(self.params.get("prompt") or "")
        tail = prompt_tail(previous_text or "")
        joined = f"{own} {tail}".strip() if tail else own
        return joined[-PROMPT_CHARS:] or None

    def stitch(self, chunks: list[ChunkAnswer]) -> dict[str, Any]:
        """The one result row of a chunked recording; its json sidecar is the stitched transcript."""
        result = stitch(chunks, self.format)
        result["format"] = self.format
        if "json" in self.sidecars:
            body = {key: result[key] for key in ("text", "language", "duration", "segments", "words")
                    if result.get(key) is not None}
            body["chunks"] = [{"start": c.start_s, "end": c.end_s, "request_id": c.request_id} for c in chunks]
            result[RAW_KEY] = json.dumps(body).encode()
        return result

    # ---- answers

    def parse_answer(self, request: Request, response: HttpResponse) -> list[dict[str, Any]]:
        if self.format in TEXT_FORMATS:
            result = parse_text_answer(response, self.format)
        else:
            result = parse_json_answer(response)
        result["format"] = self.format
        result["chunks"] = 1
        result["chunk_request_ids"] = [response.request_id or ""]
        if "json" in self.sidecars:
            result[RAW_KEY] = response.body
        return [result]

    def result_fields(self) -> list[pa.Field]:
        return [
            pa.field("text", pa.string()),
            pa.field("language", pa.string()),
            pa.field("duration", pa.float64()),
            pa.field("segments", pa.list_(SEGMENT)),
            pa.field("words", pa.list_(WORD)),
            pa.field("subtitles", pa.string()),
            pa.field("format", pa.string()),
            pa.field("sidecars", pa.list_(pa.string())),
            pa.field("chunks", pa.int64()),
            pa.field("chunk_request_ids", pa.list_(pa.string())),
        ]

    def usage(self, results: list[dict[str, Any]]) -> Usage:
        return Usage(audio_seconds=sum(result.get("duration") or 0.0 for result in results))

    def outputs(self, request: Request, results: list[dict[str, Any]]) -> list[list[FileOutput]]:
        """Each configured sidecar, written whole before the row is committed."""
        (item,), (result,) = request.items, results
        raw = result.pop(RAW_KEY, None)
        stem = f"{SIDECAR_DIR}/{safe_relative(item.row.id)}"
        return [[FileOutput(_named(f"{stem}.{extension}"), self._sidecar(extension, result, raw), kind="sidecar")
                 for extension in self.sidecars]]

    def with_files(self, request: Request, results: list[dict[str, Any]],
                   written: list[list[WrittenFile]]) -> list[dict[str, Any]]:
        (result,), (files,) = results, written
        if files:
            result["sidecars"] = [file.relative for file in files]
        return results

    def _sidecar(self, extension: str, result: dict[str, Any], raw: bytes | None) -> bytes:
        if extension == "txt":
            return ((result.get("text") or "") + "\n").encode()
        if extension == "json":
            assert raw is not None  # parse() keeps the body whenever a json sidecar is configured
            return raw
        subtitles = result.get("subtitles")
        if subtitles and self.format == extension:
            return subtitles.encode()
        cues = parse_cues(subtitles) if subtitles else segment_cues(result.get("segments"))
        return (to_srt(cues) if extension == "srt" else to_vtt(cues)).encode()


class Translation(Transcription):
    """Speech in any language to English text; same formats, no language or timestamps."""

    kind = "translation"
    op = "audio/translations"

    def _check_params(self) -> None:
        for key in ("language", "timestamp_granularities"):
            if key in self.params:
                raise self._spec_error(f"params.{key}", "is not accepted by audio/translations (the output is "
                                       "always English, timed by segments); remove it")
        super()._check_params()


_SIDECAR_NEEDS = {
    "json": "a json sidecar needs response_format = \"json\" or \"verbose_json\"",
    "srt": "srt/vtt sidecars need response_format srt, vtt, or verbose_json with segment timestamps",
    "vtt": "srt/vtt sidecars need response_format srt, vtt, or verbose_json with segment timestamps",
}


def _named(relative: str) -> Callable[[bytes], str]:
    return lambda _data: relative


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]


def form_fields(params: dict[str, Any]) -> list[FormPart]:
    """Params as multipart fields: lists as repeated `name[]` parts (as the openai SDK sends them)."""
    parts = []
    for name, value in params.items():
        values = value if isinstance(value, list) else [value]
        field_name = f"{name}[]" if isinstance(value, list) else name
        parts += [FormPart(field_name, _form_text(v)) for v in values]
    return parts


def _form_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return json.dumps(value)
    return str(value)


def parse_text_answer(response: HttpResponse, fmt: str) -> dict[str, Any]:
    """text/plain answers: the transcript itself, or an srt/vtt document."""
    try:
        body = response.body.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidResponseError("the transcript is not UTF-8 text", request_id=response.request_id) from None
    if fmt == "text":
        return {"text": body.strip()}
    cues = parse_cues(body)
    if body.strip() and not cues:
        raise InvalidResponseError(f"the answer is not a {fmt} document", request_id=response.request_id)
    return {"text": plain_text(cues), "subtitles": body}


def parse_json_answer(response: HttpResponse) -> dict[str, Any]:
    """json ({"text"}) or verbose_json (language, duration, segments, words)."""
    data = response.json()
    if not isinstance(data, dict) or not isinstance(data.get("text"), str):
        raise InvalidResponseError("the answer has no transcript text", request_id=response.request_id)
    duration = data.get("duration")
    try:
        return {
            "text": data["text"].strip(),
            "language": data.get("language"),
            "duration": float(duration) if duration is not None else None,
            "segments": _segments(data.get("segments")),
            "words": _words(data.get("words")),
        }
    except (TypeError, ValueError, KeyError, AttributeError) as exc:
        raise InvalidResponseError(f"the transcript's timings are malformed ({exc})",
                                   request_id=response.request_id) from None


def _segments(value: Any) -> list[dict[str, Any]] | None:
    if value is None:
        return None
    # diarized_json numbers segments "seg_0", "seg_1"...: ours are renumbered from 0 in order.
    return [{"id": i, "start": _time(s["start"]), "end": _time(s["end"]), "text": str(s.get("text", "")).strip(),
             "speaker": None if s.get("speaker") is None else str(s["speaker"])} for i, s in enumerate(value)]


def _time(value: Any) -> float:
    seconds = float(value)
    if seconds < 0:  # NaN and infinity are refused with every answer's numbers (base.py)
        raise ValueError(f"a time of {value!r}")
    return seconds


def _words(value: Any) -> list[dict[str, Any]] | None:
    if value is None:
        return None
    return [{"word": str(w["word"]), "start": _time(w["start"]), "end": _time(w["end"])} for w in value]


def segment_cues(segments: list[dict[str, Any]] | None) -> list[Cue]:
    if segments is None:
        raise InvalidResponseError("the answer has no segments to time subtitles with")
    return [Cue(s["start"], s["end"], s["text"]) for s in segments]
