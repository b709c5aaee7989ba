"""Files in object storage, on Azurite and on moto's S3 server: a transcription job over a folder (prefix) of
audio objects, and images, speech audio and sidecars written as objects, each committed before its row."""

from __future__ import annotations

import hashlib
import json
import signal
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

from pipeline.emulator.audio import speech_audio
from pipeline.emulator.png import PNG_SIGNATURE, png_bytes
from pipeline.emulator.transcripts import transcript_for
from pipeline.runner import RunOptions, run_job
from pipeline.spec import load_spec

from ..integration.conftest import run_cli, write_job
from ..integration.test_files_transcription import AUDIO, BAD, GLOB
from .conftest import committed_ids, part_infos, put
from .test_cloud_runs import jsonl

# Nested prefixes, two levels deep; the .expected.txt neighbours are uploaded too and left out by the glob.
GOOD = ["en/approved.mp3", "en/meetings/planning/roadmap.wav", "en/meetings/retro.flac", "fr/meteo.wav"]
BAD_OBJECTS = {"bad/zero.wav": "the file is empty (0 bytes)", "bad/mislabeled.mp3": "the content is not mp3 audio"}
SIZE = 16  # image side in pixels


@dataclass
class Store:
    """One bucket or container for a test: the filesystem, URIs into it and the credentials a run needs."""

    fs: pafs.FileSystem
    name: str  # the container or bucket: the filesystem's path prefix
    scheme: str
    env: dict[str, str]

    def uri(self, key: str) -> str:
        return f"{self.scheme}://{self.name}/{key}"

    def read(self, key: str) -> bytes:
        with self.fs.open_input_stream(f"{self.name}/{key}", compression=None) as stream:
            return bytes(stream.read())

    def results(self, key: str = "out/job", folder: str = "results") -> list[dict]:
        """Every committed row of results/ (or failures/), each part read on its own."""
        records: list[dict] = []
        for info in part_infos(self.fs, f"{self.name}/{key}/{folder}"):
            if info.size:
                records += pq.read_table(info.path, filesystem=self.fs).to_pylist()
        return records


@pytest.fixture(params=["azure", "s3"])
def store(request: pytest.FixtureRequest) -> Store:
    if request.param == "azure":
        azurite = request.getfixturevalue("azurite")
        container = request.getfixturevalue("container")
        return Store(azurite.fs, container, "abfs", request.getfixturevalue("azure_env"))
    moto_s3 = request.getfixturevalue("moto_s3")
    bucket = request.getfixturevalue("bucket")
    return Store(moto_s3.fs, bucket, "s3", request.getfixturevalue("s3_env"))


def upload_audio(store: Store, prefix: str) -> None:
    for relative in GOOD:
        for source in (AUDIO / relative, (AUDIO / relative).with_suffix(".expected.txt")):
            put(store.fs, f"{store.name}/{prefix}/{source.relative_to(AUDIO).as_posix()}", source.read_bytes())
    for relative in BAD_OBJECTS:
        put(store.fs, f"{store.name}/{prefix}/{relative}", (BAD / Path(relative).name).read_bytes())
    put(store.fs, f"{store.name}/{prefix}/.hidden/skipped.wav", (AUDIO / GOOD[1]).read_bytes())


def test_transcription_from_a_cloud_folder_with_sidecars_in_the_cloud(tmp_path: Path, store: Store,
                                                                      emulator) -> None:
    upload_audio(store, "calls/2024")
    spec = write_job(tmp_path, emulator.url, "transcription", input_path=tmp_path / "unused",
                     inputs={"path": store.uri("calls/2024/"), "glob": GLOB},
                     params={"response_format": "verbose_json"}, service={"deployment": "whisper"},
                     output={"path": store.uri("out/job"), "sidecars": ["txt", "json"]},
                     limits={"concurrency": 3, "tokens_per_minute": 1})
    result = run_job(load_spec(spec))
    assert result.exit_code == 1, result.message  # some rows failed
    failures = {f["id"]: f for f in store.results(folder="failures")}
    assert set(failures) == set(BAD_OBJECTS)
    for row_id, reason in BAD_OBJECTS.items():
        assert reason in failures[row_id]["message"] and failures[row_id]["stage"] == "input"
    assert emulator.stats()["by_op"] == {"audio/transcriptions": len(GOOD)}  # bad objects never uploaded
    records = {r["id"]: r for r in store.results()}
    assert sorted(records) == GOOD  # ids are paths relative to the prefix; hidden folders skipped
    for row_id, record in records.items():
        expected = transcript_for((AUDIO / row_id).read_bytes(), "transcribe", None)  # the whole object arrived
        assert record["text"] == expected.text and record["duration"] == expected.duration
        assert record["sidecars"] == [f"sidecars/{row_id}.txt", f"sidecars/{row_id}.json"]
        assert store.read(f"out/job/sidecars/{row_id}.txt") == (record["text"] + "\n").encode()
        assert json.loads(store.read(f"out/job/sidecars/{row_id}.json"))["text"].strip() == record["text"]
    assert not (tmp_path / f"{store.scheme}:").exists()  # nothing written to a local look-alike of the URI


def test_preflight_counts_the_listing(tmp_path: Path, store: Store, emulator) -> None:
    upload_audio(store, "calls")
    spec = write_job(tmp_path, emulator.url, "transcription", input_path=tmp_path / "unused",
                     inputs={"path": store.uri("calls"), "glob": "**/*.wav"}, service={"deployment": "whisper"},
                     output={"path": str(tmp_path / "out")}, limits={"tokens_per_minute": 1})
    checked = run_cli("validate", str(spec), env=store.env)
    assert checked.returncode == 0, checked.stderr
    assert f"3 rows in {store.uri('calls')}" in checked.stdout  # roadmap.wav, meteo.wav, zero.wav
    assert emulator.stats()["by_op"] == {}
    result = run_job(load_spec(spec))
    assert result.summary["rows_total"] == 3
    assert result.summary["rows_failed"] == 1


def image_spec(tmp_path: Path, store: Store, url: str, rows: int, *, flush_rows: int = 5) -> Path:
    prompts = [{"id": f"cat/img-{i:03d}", "prompt": f"a lighthouse in style {i}"} for i in range(rows)]
    put(store.fs, f"{store.name}/prompts.jsonl", jsonl(prompts))
    return write_job(tmp_path, url, "images", input_path=tmp_path / "unused",
                     inputs={"path": store.uri("prompts.jsonl"), "prompt": "prompt"},
                     params={"n": 2, "size": "256x256", "response_format": "b64_json"},
                     service={"deployment": "dall-e-2"}, limits={"concurrency": 4},
                     output={"path": store.uri("out/job"), "flush_rows": flush_rows, "flush_seconds": 0.2})


def assert_images_whole(store: Store, records: list[dict]) -> None:
    """Every path in a committed row names a complete object whose bytes match the row's size and sha256."""
    for record in records:
        index = int(record["id"].rsplit("-", 1)[1])
        assert record["paths"] == [f"images/{record['id']}-{i}.png" for i in range(2)]
        for i, (relative, size, digest) in enumerate(zip(record["paths"], record["bytes"], record["sha256"],
                                                         strict=True)):
            data = store.read(f"out/job/{relative}")
            assert data.startswith(PNG_SIGNATURE) and data == png_bytes(f"a lighthouse in style {index}#{i}", SIZE,
                                                                          SIZE)
            assert len(data) == size and hashlib.sha256(data).hexdigest() == digest


def test_images_to_cloud_output(tmp_path: Path, store: Store, emulator) -> None:
    emulator.configure(image_size_px=SIZE)
    result = run_job(load_spec(image_spec(tmp_path, store, emulator.url, 6)))
    assert result.exit_code == 0, result.message
    records = sorted(store.results(), key=lambda r: r["id"])
    assert [r["id"] for r in records] == [f"cat/img-{i:03d}" for i in range(6)]
    assert_images_whole(store, records)


def test_limited_run_then_resume_writes_every_image_once(tmp_path: Path, store: Store, emulator) -> None:
    emulator.configure(image_size_px=SIZE)
    spec = image_spec(tmp_path, store, emulator.url, 20)
    first = run_job(load_spec(spec), RunOptions(limit=7))
    assert first.exit_code == 0, first.message
    done = len(store.results())
    assert 7 <= done < 20
    rest = run_job(load_spec(spec))
    assert rest.exit_code == 0, rest.message
    assert rest.summary["rows_skipped"] == done
    records = store.results()
    assert Counter(r["id"] for r in records).most_common(1)[0][1] == 1
    assert len(records) == 20
    assert emulator.stats()["by_op"] == {"images/generations": 20}  # no prompt asked twice
    assert_images_whole(store, records)


def test_kill_9_while_an_image_uploads_then_rerun(tmp_path: Path, store: Store, emulator) -> None:
    """The crash comes after the image's bytes are sent, before its upload is committed: its row is not
    committed, the rerun writes it again, and every committed row points at a whole object."""
    emulator.configure(image_size_px=SIZE)
    spec = image_spec(tmp_path, store, emulator.url, 12, flush_rows=2)
    crashed = run_cli("run", str(spec), "-q", env={**store.env, "PIPELINE_CRASH_AT": "file.written:9"})
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr
    assert len(store.results()) < 12
    assert_images_whole(store, store.results())
    rerun = run_cli("run", str(spec), "-q", env=store.env)
    assert rerun.returncode == 0, rerun.stderr
    ids = committed_ids(store.fs, f"{store.name}/out/job/results")
    assert sorted(ids) == [f"cat/img-{i:03d}" for i in range(12)]
    assert_images_whole(store, store.results())


TEXTS = [{"id": "tts/001", "text": "Welcome to the quarterly planning meeting."},
         {"id": "tts/002", "text": "Your order has shipped. [[fault:500:1]]"}]


def test_speech_to_cloud_output(tmp_path: Path, store: Store, emulator) -> None:
    put(store.fs, f"{store.name}/texts.jsonl", jsonl(TEXTS))
    spec = write_job(tmp_path, emulator.url, "speech", input_path=tmp_path / "unused",
                     inputs={"path": store.uri("texts.jsonl"), "text": "text"},
                     params={"response_format": "wav"}, service={"deployment": "tts"},
                     output={"path": store.uri("out/job")}, limits={"tokens_per_minute": 1})
    result = run_job(load_spec(spec))
    assert result.exit_code == 0, result.message
    records = {r["id"]: r for r in store.results()}
    assert sorted(records) == [t["id"] for t in TEXTS]
    for row in TEXTS:
        record = records[row["id"]]
        assert record["path"] == f"audio/{row['id']}.wav"
        data = store.read(f"out/job/{record['path']}")
        assert data == speech_audio(row["text"], "wav", 1.0)
        assert (record["bytes"], record["sha256"]) == (len(data), hashlib.sha256(data).hexdigest())
    assert records["tts/002"]["attempts"] == 2  # a retried answer still writes one whole object



def test_a_long_recording_in_the_cloud_is_cut_sent_and_stitched(tmp_path: Path, store: Store) -> None:
    """An object read once, probed, cut into chunks and stitched, its row and sidecar in the cloud."""
    from pipeline.audio import samples
    from pipeline.emulator.config import EmulatorConfig
    from pipeline.emulator.server import EmulatorThread

    plan = samples.script(60, seed=21, sentence_s=(2.0, 4.0), pause_s=(0.6, 1.5))
    samples.write(tmp_path / "talk.wav", plan)
    put(store.fs, f"{store.name}/long/talk.wav", (tmp_path / "talk.wav").read_bytes())
    with EmulatorThread(EmulatorConfig(max_audio_seconds=20.5)) as emulator:
        spec = write_job(tmp_path, emulator.url, "transcription", input_path=tmp_path / "unused",
                         inputs={"path": store.uri("long/"), "glob": "**/*.wav"},
                         params={"response_format": "verbose_json"}, service={"deployment": "whisper"},
                         output={"path": store.uri("out/job"), "sidecars": ["srt"]}, limits={"concurrency": 2})
        spec.write_text(spec.read_text() + "[audio]\nmax_chunk_seconds = 20\n")
        result = run_job(load_spec(spec))
        sent = emulator.stats()["by_op"]["audio/transcriptions"]
    assert result.exit_code == 0, result.message
    (record,) = store.results()
    assert record["chunks"] == sent >= 3
    starts = [segment["start"] for segment in record["segments"]]
    assert len(starts) == len(plan.sentences)
    assert all(abs(got - sentence.start) <= 0.3 for got, sentence in zip(starts, plan.sentences, strict=True))
    assert store.read("out/job/sidecars/talk.wav.srt").decode().count(" --> ") == len(plan.sentences)
