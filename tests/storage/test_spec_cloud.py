"""Cloud paths in a job spec: a URI selects object storage; what it cannot hold is refused naming the key."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from pipeline.errors import SpecError
from pipeline.spec import JobSpec, parse_spec

BASE: dict[str, Any] = {
    "name": "t", "endpoint": "embeddings",
    "input": {"path": "abfs://data/in.jsonl", "text": "text"},
    "output": {"path": "abfs://data/out/t"},
    "service": {"provider": "emulator"},
}


def parse(**changes: dict[str, Any]) -> JobSpec:
    raw = copy.deepcopy(BASE)
    for section, values in changes.items():
        if section == "top":
            raw.update(values)
        else:
            raw[section].update(values)
    return parse_spec(raw, Path("job.toml"), env={})


def test_uris_are_kept_as_written() -> None:
    spec = parse()
    assert spec.input.uri == spec.input.location == "abfs://data/in.jsonl"
    assert spec.output.uri == spec.output.location == "abfs://data/out/t"


def test_local_paths_have_no_uri(tmp_path: Path) -> None:
    spec = parse(input={"path": str(tmp_path / "in.jsonl")}, output={"path": str(tmp_path / "out")})
    assert spec.input.uri is None and spec.input.path == tmp_path / "in.jsonl"
    assert spec.output.uri is None and spec.output.location == str(tmp_path / "out")


@pytest.mark.parametrize("changes, message", [
    ({"input": {"path": "ftp://host/in.jsonl"}}, "[input] path: unsupported storage URI scheme ftp://"),
    ({"output": {"path": "abfs://container"}}, "[output] path: expected abfs://CONTAINER/PATH"),
    ({"input": {"path": "abfs://data/images/"}}, "folders of files in cloud storage are read by transcription"),
    ({"input": {"path": "abfs://data/in.csv"}}, "a cloud input must be one .jsonl, .jsonl.gz or .parquet"),
    ({"top": {"endpoint": "transcription"}, "input": {"path": "abfs://data/audio.jsonl", "file": "f"}},
     "transcription from a cloud table is not supported; point it at the folder (prefix)"),
    ({"service": {"provider": "emulator", "mode": "batch"}}, "batch mode keeps its batch files"),
])
def test_what_cloud_storage_cannot_hold_is_refused(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(SpecError) as caught:
        parse(**changes)
    assert message in str(caught.value)
    assert str(caught.value).startswith("job.toml: ")


def test_transcription_from_local_audio_may_write_results_to_the_cloud(tmp_path: Path) -> None:
    spec = parse(top={"endpoint": "transcription"}, input={"path": str(tmp_path)})
    assert spec.output.uri == "abfs://data/out/t"


@pytest.mark.parametrize("changes", [
    {"top": {"endpoint": "transcription"}, "input": {"path": "abfs://data/audio/", "glob": "**/*.wav"}},
    {"top": {"endpoint": "translation"}, "input": {"path": "s3://bucket/audio"}},
    {"top": {"endpoint": "transcription"}, "input": {"path": "abfs://data/audio"}, "output": {"sidecars": ["srt"]},
     "params": {"response_format": "srt"}},
    {"top": {"endpoint": "images"}, "input": {"prompt": "text"}},
    {"top": {"endpoint": "speech"}},
])
def test_audio_folders_in_and_files_out_are_accepted(changes: dict[str, Any]) -> None:
    raw = copy.deepcopy(BASE)
    for section, values in changes.items():
        (raw if section == "top" else raw.setdefault(section, {})).update(values)
    spec = parse_spec(raw, Path("job.toml"), env={})
    assert spec.output.uri == "abfs://data/out/t"
    assert spec.input.is_folder() == (spec.endpoint in ("transcription", "translation"))
