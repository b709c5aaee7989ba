"""Stitching chunk answers into one transcript: offsets, joins in silence and in overlaps, text-only joins,
subtitles, speaker labels; and which model accepts what."""

from __future__ import annotations

from typing import Any

import pytest

from pipeline.endpoints.speech_models import DIARIZE, GPT_4O_MINI, WHISPER, duration_limit_in, speech_model
from pipeline.endpoints.stitching import ChunkAnswer, join_texts, prompt_tail, repeated_words, stitch
from pipeline.endpoints.subtitles import Cue, parse_cues, to_srt


def seg(start: float, end: float, text: str, speaker: str | None = None) -> dict[str, Any]:
    return {"id": 0, "start": start, "end": end, "text": text, "speaker": speaker}


def test_segments_are_offset_renumbered_and_kept_once_across_an_overlap() -> None:
    first = ChunkAnswer(0.0, 30.0, 0.0, {"text": "a b c", "segments": [seg(1, 10, "a"), seg(12, 20, "b"),
                                                                       seg(28.2, 29.8, "c")]}, "r1")
    # the second chunk starts 1 s before the first ends: it hears the end of "c" again (29.0-29.8); the join
    # is the middle of the overlap (29.5), and each side keeps the segments whose middle is on its side
    second = ChunkAnswer(29.0, 50.0, 1.0, {"text": "c d", "segments": [seg(0.0, 0.8, "c"), seg(3, 9, "d")]}, "r2")
    result = stitch([first, second], "verbose_json")
    assert [(s["id"], s["start"], s["end"], s["text"]) for s in result["segments"]] == [
        (0, 1, 10, "a"), (1, 12, 20, "b"), (2, 28.2, 29.8, "c"), (3, 32, 38, "d")]
    assert result["text"] == "a b c d"
    assert result["duration"] == 50.0 and result["chunks"] == 2 and result["chunk_request_ids"] == ["r1", "r2"]


def test_a_join_in_silence_keeps_every_segment_of_both_sides() -> None:
    first = ChunkAnswer(0.0, 20.0, 0.0, {"segments": [seg(0, 19.5, "x")], "words": [{"word": "x", "start": 0,
                                                                                      "end": 19.5}]})
    second = ChunkAnswer(20.0, 25.0, 0.0, {"segments": [seg(0.1, 4, "y")], "words": [{"word": "y", "start": 0.1,
                                                                                       "end": 4}]})
    result = stitch([first, second], "verbose_json")
    assert [s["text"] for s in result["segments"]] == ["x", "y"]
    assert [(w["word"], w["start"]) for w in result["words"]] == [("x", 0), ("y", 20.1)]


def test_text_only_answers_drop_the_words_an_overlap_repeats() -> None:
    chunks = [ChunkAnswer(0, 30, 0, {"text": "one two three four"}),
              ChunkAnswer(29, 60, 1.0, {"text": "three four five"}),
              ChunkAnswer(60, 70, 0.0, {"text": "five again"})]  # a cut in silence repeats nothing
    assert stitch(chunks, "text")["text"] == "one two three four five five again"
    assert stitch(chunks, "text")["segments"] is None
    assert repeated_words(["a", "b", "Three,", "four"], ["three", "four.", "five"]) == 2
    assert join_texts(["a b"], []) == "a b"


def test_srt_answers_become_one_continuous_document() -> None:
    first = ChunkAnswer(0, 10, 0, {"subtitles": to_srt([Cue(0.5, 4, "hello")])})
    second = ChunkAnswer(10, 20, 0, {"subtitles": to_srt([Cue(1, 3, "world")])})
    result = stitch([first, second], "srt")
    assert [(c.start, c.end, c.text) for c in parse_cues(result["subtitles"])] == [(0.5, 4, "hello"), (11, 13, "world")]
    assert result["text"] == "hello world"


def test_speaker_labels_are_mapped_to_the_recordings() -> None:
    first = ChunkAnswer(0, 10, 0, {"segments": [seg(0, 4, "hi", "A"), seg(5, 9, "yo", "B")]}, speaker_map={
        "A": "A", "B": "B"})
    second = ChunkAnswer(10, 20, 0, {"segments": [seg(0, 4, "new", "A")]}, speaker_map={"A": "C"})
    result = stitch([first, second], "diarized_json")
    assert [s["speaker"] for s in result["segments"]] == ["A", "B", "C"]


def test_prompt_tail_is_the_last_words() -> None:
    assert prompt_tail("a b c d", words=2) == "c d" and prompt_tail("") == ""


@pytest.mark.parametrize(("name", "model"), [
    ("whisper", WHISPER), ("whisper-1", WHISPER), ("gpt-4o-mini-transcribe", GPT_4O_MINI),
    ("gpt-4o-mini-transcribe-2025-12-15", GPT_4O_MINI), ("GPT-4o-transcribe-diarize", DIARIZE),
    ("my-stt-deployment", None), (None, None), ("gpt-4o", None)])
def test_models_are_known_by_name_and_snapshot(name: str | None, model: object) -> None:
    assert speech_model(name) is model


def test_chunk_limits_stay_under_every_model() -> None:
    assert DIARIZE.max_chunk_s <= 1400 - 20 and GPT_4O_MINI.max_chunk_s <= 1480 and WHISPER.max_chunk_s <= 1380
    assert duration_limit_in("audio duration 1830.530612 seconds is longer than 1400 seconds which is the "
                             "maximum for this model") == 1400
    assert duration_limit_in("Invalid file format") is None


def test_an_utterance_cut_in_two_by_an_overlapping_cut_is_one_segment_said_once() -> None:
    # No pause near the cut: chunk 1 ends at 30 inside a sentence, chunk 2 starts at 29 and hears its end.
    first = ChunkAnswer(0, 30, 0, {"segments": [seg(20, 29.9, "the quick brown fox")]})
    second = ChunkAnswer(29, 40, 1.0, {"segments": [seg(0.1, 5, "brown fox jumps over"), seg(6, 8, "the dog")]})
    result = stitch([first, second], "verbose_json")
    assert [(s["start"], s["end"], s["text"]) for s in result["segments"]] == [
        (20, 34, "the quick brown fox jumps over"), (35, 37, "the dog")]
