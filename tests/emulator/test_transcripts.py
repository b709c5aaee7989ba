"""Transcripts from what is heard (pure, no server): words from pitch and length, segments from regions,
the per-model rules, and speaker labels."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from pipeline.audio import samples
from pipeline.audio.errors import AudioDecodeError
from pipeline.emulator.diarization import reference_clips, speaker_labels
from pipeline.emulator.exchange import Rejection
from pipeline.emulator.hearing import RATE, Heard, Region, dominant_pitch, hear, sharpen
from pipeline.emulator.testing import data_url, make_wav, recording
from pipeline.emulator.transcribers import (
    DIARIZE,
    GPT_4O,
    GPT_4O_MINI,
    WHISPER,
    Transcriber,
    check_options,
    length_refusal,
    transcriber_for,
)
from pipeline.emulator.transcripts import srt, transcript_for, transcript_of, verbose_json, vtt, words_for_pitch


def test_words_for_pitch_are_deterministic_and_paced() -> None:
    assert words_for_pitch(300, 4.0) == words_for_pitch(300, 4.0)
    assert len(words_for_pitch(300, 4.0)) == 10 and len(words_for_pitch(300, 0.05)) == 1
    assert words_for_pitch(300, 4.0) != words_for_pitch(350, 4.0)
    assert words_for_pitch(312, 4.0) == words_for_pitch(300, 4.0)  # rounded to samples.PITCH_STEP_HZ


def test_a_shorter_hearing_of_a_sentence_reads_as_its_start() -> None:
    whole, cut = words_for_pitch(400, 8.0), words_for_pitch(400, 3.0)
    assert [w.rstrip(".") for w in cut] == [w.rstrip(".") for w in whole[: len(cut)]]


def test_dominant_pitch_is_the_tone_rounded_to_the_step() -> None:
    t = np.arange(16_000) / 16_000
    tone = (8000 * np.sin(2 * np.pi * 1262.0 * t)).astype(np.int16)
    assert dominant_pitch(tone) == 1250.0


def test_regions_and_pitches_follow_the_script() -> None:
    plan = samples.Script((samples.Sentence(0.5, 2.5, 250.0, 0), samples.Sentence(3.4, 5.0, 1300.0, 1)), 5.5)
    heard = hear(recording(plan))
    assert heard.duration == pytest.approx(5.5)
    assert [r.pitch for r in heard.regions] == [250.0, 1300.0]
    assert [r.speaker for r in heard.regions] == [0, 1]
    for region, sentence in zip(heard.regions, plan.sentences, strict=True):
        assert region.start == pytest.approx(sentence.start, abs=0.1)
        assert region.end == pytest.approx(sentence.end, abs=0.1)


@pytest.mark.parametrize("off_s", [-0.12, 0.0, 0.08])
def test_edges_are_measured_on_the_sound_wherever_the_regions_put_them(off_s: float) -> None:
    # Words are counted from a region's length: a sentence must measure the same in every upload.
    plan = samples.Script((samples.Sentence(0.8, 2.6, 700.0, 0),), 3.4)
    audio = np.concatenate(list(samples.render(plan)))
    first, last = sharpen(audio, int((0.8 + off_s) * RATE), int((2.6 - off_s) * RATE))
    assert abs(first / RATE - 0.8) < 0.001 and abs(last / RATE - 2.6) < 0.001


def test_one_segment_per_region_with_its_words_timed_evenly() -> None:
    heard = Heard(9.0, (Region(1.0, 3.0, 200.0), Region(4.0, 8.0, 1450.0)))
    transcript = transcript_of(heard)
    assert [(s.start, s.end, s.speaker) for s in transcript.segments] == [(1.0, 3.0, 0), (4.0, 8.0, 1)]
    assert [s.text for s in transcript.segments] == [" ".join(words_for_pitch(200, 2.0)),
                                                     " ".join(words_for_pitch(1450, 4.0))]
    first = transcript.segments[0].words
    assert [(w.start, w.end) for w in first] == [(1.0, 1.4), (1.4, 1.8), (1.8, 2.2), (2.2, 2.6), (2.6, 3.0)]
    assert transcript.text == " ".join(s.text for s in transcript.segments)


def test_a_region_over_30_s_is_cut_in_pieces_that_read_as_the_whole() -> None:
    transcript = transcript_of(Heard(80.0, (Region(2.0, 72.0, 600.0),)))
    pieces = transcript.segments
    assert len(pieces) == 3 and all(s.end - s.start <= 30.0 for s in pieces)
    assert pieces[0].start == 2.0 and pieces[-1].end == 72.0
    assert all(a.end == b.start for a, b in itertools.pairwise(pieces))
    assert transcript.text == " ".join(words_for_pitch(600, 70.0))


def test_silence_has_no_segments() -> None:
    transcript = transcript_of(Heard(3.0, ()))
    assert transcript.text == "" and transcript.segments == ()
    assert srt(transcript) == "\n" and vtt(transcript) == "WEBVTT\n\n\n"


def test_formats_carry_the_segments() -> None:
    transcript = transcript_for(make_wav(2.0))
    assert transcript.duration == pytest.approx(2.0)
    assert srt(transcript).startswith("1\n00:00:00,100 --> 00:00:01,900\n")
    assert vtt(transcript).startswith("WEBVTT\n\n00:00:00.100 --> 00:00:01.900\n")
    body = verbose_json(transcript, {"word", "segment"})
    assert body["segments"][0]["start"] == pytest.approx(0.1, abs=0.02) and body["words"]
    assert body["text"] == " ".join(w["word"] for w in body["words"])
    assert "words" not in verbose_json(transcript, {"segment"})


def test_what_is_not_audio_is_not_transcribed() -> None:
    with pytest.raises(AudioDecodeError):
        transcript_for(b"This is a text file, not an MP3.\n")


@pytest.mark.parametrize(("name", "model"), [
    ("whisper", WHISPER), ("whisper-1", WHISPER), ("my-stt", WHISPER), ("gpt-4o", WHISPER),
    ("gpt-4o-transcribe", GPT_4O), ("prod-GPT-4o-Transcribe", GPT_4O), ("gpt-4o-mini-transcribe", GPT_4O_MINI),
    ("gpt-4o-transcribe-diarize", DIARIZE), ("diarize-eu", DIARIZE),
])
def test_the_model_is_read_from_the_name(name: str, model: Transcriber) -> None:
    assert transcriber_for(name) is model


@pytest.mark.parametrize(("model", "fields", "task", "message"), [
    (GPT_4O, {"response_format": "verbose_json"}, "transcribe",
     "response_format 'verbose_json' is not compatible with model 'gpt-4o-transcribe'. Use 'json' or 'text' instead."),
    (GPT_4O_MINI, {"response_format": "srt"}, "transcribe", "response_format 'srt' is not compatible"),
    (WHISPER, {"response_format": "diarized_json"}, "transcribe", "'diarized_json' is not compatible with model"),
    (DIARIZE, {"response_format": "vtt"}, "transcribe", "'vtt' is not compatible with model"),
    (GPT_4O, {"timestamp_granularities": ["word"]}, "transcribe", "timestamp_granularities[] is not compatible"),
    (DIARIZE, {"prompt": "Hello"}, "transcribe", "prompt is not supported for gpt-4o-transcribe-diarize"),
    (GPT_4O, {}, "translate", "model 'gpt-4o-transcribe' does not support translations"),
    (DIARIZE, {"chunking_strategy": "sometimes"}, "transcribe", "Invalid value for 'chunking_strategy'"),
    (DIARIZE, {"chunking_strategy": '{"type": "manual"}'}, "transcribe", "Invalid value for 'chunking_strategy'"),
])
def test_options_a_model_does_not_take_are_refused(model: Transcriber, fields: dict, task: str, message: str) -> None:
    with pytest.raises(Rejection) as refused:
        check_options(model, fields, task)
    assert refused.value.status == 400 and message in refused.value.body["error"]["message"]


@pytest.mark.parametrize(("model", "fields"), [
    (WHISPER, {"response_format": "verbose_json", "timestamp_granularities": ["word"]}),
    (DIARIZE, {"response_format": "diarized_json", "chunking_strategy": "auto"}),
    (DIARIZE, {"chunking_strategy": '{"type": "server_vad", "threshold": 0.5}'}),
    (GPT_4O, {"response_format": "text", "prompt": "Hello"}),
])
def test_options_a_model_takes_pass(model: Transcriber, fields: dict) -> None:
    check_options(model, fields, "transcribe")


@pytest.mark.parametrize(("model", "seconds", "override", "limit"), [
    (GPT_4O, 1500.5, 0, "1500"), (GPT_4O_MINI, 1600.0, 0, "1500"), (DIARIZE, 1400.5, 0, "1400"),
    (WHISPER, 3.0, 2.5, "2.5"), (DIARIZE, 3.0, 2.0, "2"),
])
def test_audio_too_long_for_the_model_is_refused(model: Transcriber, seconds: float, override: float,
                                                 limit: str) -> None:
    refusal = length_refusal(model, seconds, {"chunking_strategy": "auto"}, override)
    assert refusal is not None and refusal.body["error"] == {
        "message": f"audio duration {seconds:.6f} seconds is longer than {limit} seconds which is the maximum for "
                   "this model", "type": "invalid_request_error", "param": None, "code": "invalid_value"}


def test_lengths_the_models_take() -> None:
    assert length_refusal(WHISPER, 7200.0, {}, 0) is None
    assert length_refusal(GPT_4O, 1499.0, {}, 0) is None
    assert length_refusal(DIARIZE, 30.0, {}, 0) is None
    refusal = length_refusal(DIARIZE, 31.0, {}, 0)
    assert refusal is not None and refusal.body["error"]["message"] == (
        "chunking_strategy is required for audio longer than 30 seconds")
    assert length_refusal(DIARIZE, 31.0, {"chunking_strategy[type]": "server_vad"}, 0) is None  # the SDK's object


def test_speakers_are_lettered_by_first_appearance_unless_known() -> None:
    heard = Heard(9.0, tuple(Region(i, i + 0.8, pitch) for i, pitch in enumerate([1200, 300, 1250, 2300, 350])))
    transcript = transcript_of(heard)
    assert speaker_labels(transcript, {}) == ["A", "B", "A", "C", "B"]
    assert speaker_labels(transcript, {0: "agent"}) == ["A", "agent", "A", "B", "agent"]
    assert speaker_labels(transcript, {0: "A"}) == ["B", "A", "B", "C", "A"]  # never a known speaker's name


@pytest.mark.parametrize(("fields", "message"), [
    ({"known_speaker_names": ["a"], "known_speaker_references": []}, "they must match one to one"),
    ({"known_speaker_names": list("abcde"), "known_speaker_references": [data_url(b"x")] * 5}, "At most 4"),
    ({"known_speaker_names": ["a"], "known_speaker_references": ["https://example.com/a.wav"]}, "a data URL"),
    ({"known_speaker_names": ["a"], "known_speaker_references": ["data:audio/wav;base64,%%%"]}, "a data URL"),
])
def test_malformed_known_speakers_are_refused(fields: dict, message: str) -> None:
    with pytest.raises(Rejection) as refused:
        reference_clips(fields)
    assert message in refused.value.body["error"]["message"]
    assert refused.value.body["error"]["param"] == "known_speaker_references"


def test_known_speakers_are_read_from_data_urls() -> None:
    fields = {"known_speaker_names": ["agent"], "known_speaker_references": [data_url(b"RIFF")]}
    assert reference_clips(fields) == [("agent", b"RIFF")]
    assert reference_clips({}) == []
